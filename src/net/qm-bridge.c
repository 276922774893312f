/*
 * The tap script of QEMU's "-netdev tap,script=...,downscript=...": plugs the
 * tap device tap{vmid}i{n} of a VM into the bridge that net{n} of the VM's
 * configuration names, the way Proxmox VE's pve-bridge does, and unplugs it
 * again as pve-bridgedown.
 *
 *   pve-bridge [--hotplug] IFNAME       plug (also qm-bridge IFNAME)
 *   pve-bridgedown IFNAME               unplug (also qm-bridge --down IFNAME)
 *
 * The configuration is read from $QM_ROOT/etc/pve/qemu-server, or from
 * /etc/pve/qemu-server without $QM_ROOT. Errors go to standard error, which
 * QEMU copies into the start task's log, and a non-zero exit status makes
 * QEMU fail the start.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/if_bridge.h>

#include "netlink.h"
#include "qm/config.h"
#include "qm/util.h"

extern char **environ;

/* Debian's tc, by absolute path because QEMU may run the helper without /sbin in PATH. */
#define TC_PATH "/sbin/tc"

/* The settings of net{n}, from its property string. */
struct net_conf {
    char key[16];            /* net0 */
    char *bridge;
    int tag;                 /* 0: untagged */
    char *trunks;            /* "10;20-30", or NULL */
    int mtu;                 /* 0 or 1: the bridge's MTU */
    double rate;             /* MB/s, 0: unlimited */
    bool firewall;
};

static void net_conf_free(struct net_conf *net)
{
    free(net->bridge);
    free(net->trunks);
}

/* Reads the VM id and the net index from "tap{vmid}i{n}". */
static int parse_ifname(const char *ifname, int *vmid, int *index, struct qm_error *err)
{
    if (strncmp(ifname, "tap", 3) != 0)
        return qm_fail(err, 400, "invalid interface name '%s': expected tap{vmid}i{n}", ifname);
    const char *digits = ifname + 3;
    size_t nvmid = strspn(digits, "0123456789");
    if (nvmid == 0 || nvmid > 9 || digits[nvmid] != 'i')
        return qm_fail(err, 400, "invalid interface name '%s': expected tap{vmid}i{n}", ifname);
    const char *index_digits = digits + nvmid + 1;
    size_t nindex = strspn(index_digits, "0123456789");
    if (nindex == 0 || nindex > 2 || index_digits[nindex] != '\0' || atoi(index_digits) > 31)
        return qm_fail(err, 400, "invalid interface name '%s': expected tap{vmid}i{n}", ifname);
    *vmid = atoi(digits);
    *index = atoi(index_digits);
    return 0;
}

static int load_net_conf(int vmid, int index, bool hotplug, struct net_conf *net,
                         struct qm_error *err)
{
    struct qm_paths paths;
    struct qm_conf *conf = NULL;
    struct qm_propstr ps = {0};
    const char *migrated_from = hotplug ? NULL : getenv("PVE_MIGRATED_FROM");
    int rc = -1;

    memset(net, 0, sizeof(*net));
    snprintf(net->key, sizeof(net->key), "net%d", index);
    qm_paths_init(&paths, qm_paths_env_root());
    if (migrated_from && *migrated_from) {
        /* An incoming migration: the configuration is still in the source node's folder. */
        free(paths.conf_dir);
        paths.conf_dir = qm_sprintf("%s/nodes/%s/qemu-server", paths.etc, migrated_from);
    }
    if (qm_conf_load(&paths, vmid, &conf, err) < 0)
        goto out;

    const char *value = qm_conf_get(&conf->main, net->key);
    /* A hotplugged NIC is still a pending change while QEMU adds it. */
    if (!(migrated_from && *migrated_from) && conf->pending &&
        qm_conf_get(conf->pending, net->key))
        value = qm_conf_get(conf->pending, net->key);
    if (!value) {
        qm_fail(err, 404, "VM %d has no %s in %s", vmid, net->key, paths.conf_dir);
        goto out;
    }
    if (qm_propstr_parse(net->key, value, &ps, err) < 0)
        goto out;

    const char *bridge = qm_propstr_get(&ps, "bridge");
    if (!bridge || !*bridge) {
        qm_fail(err, 400, "VM %d: %s has no bridge", vmid, net->key);
        goto out;
    }
    net->bridge = qm_strdup(bridge);
    const char *s;
    if ((s = qm_propstr_get(&ps, "tag")))
        net->tag = atoi(s);
    if ((s = qm_propstr_get(&ps, "trunks")) && *s)
        net->trunks = qm_strdup(s);
    if ((s = qm_propstr_get(&ps, "mtu")))
        net->mtu = atoi(s);
    if ((s = qm_propstr_get(&ps, "rate")))
        net->rate = strtod(s, NULL);
    if ((s = qm_propstr_get(&ps, "firewall")))
        net->firewall = strcmp(s, "1") == 0;
    rc = 0;
out:
    qm_propstr_free(&ps);
    qm_conf_free(conf);
    qm_paths_free(&paths);
    return rc;
}

/* A link-local address is of no use on a bridge port. */
static void disable_ipv6(const char *ifname)
{
    char path[128];

    snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", ifname);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return;   /* IPv6 is disabled altogether */
    if (write(fd, "1\n", 2) != 2)
        fprintf(stderr, "warning: unable to disable IPv6 on %s: %s\n", ifname, strerror(errno));
    close(fd);
}

/*
 * Replaces the default VLAN of a new port: the trunks (tagged), or every
 * VLAN 2-4094 when the NIC has neither tag nor trunks, and then the tag (1
 * when untagged) as the port's PVID, untagged.
 */
/*
 * NOTE: untested, like activate_bridge_vlan, because the kernel of the test
 * machines has neither bridge VLAN filtering nor 802.1Q VLAN links.
 */
static int plug_vlans(struct nl_socket *sock, const struct nl_link *tap, const struct net_conf *net,
                      struct qm_error *err)
{
    int rc = nl_bridge_vlan(sock, tap->index, false, 1, 4094, 0);
    if (rc < 0)
        return qm_fail(err, 500, "unable to remove the default VLAN of %s: %s", tap->name,
                       nl_strerror(sock, rc));
    if (net->trunks) {
        char *list = qm_strdup(net->trunks);
        char *save = NULL;
        for (char *item = strtok_r(list, ";", &save); item; item = strtok_r(NULL, ";", &save)) {
            int first = 0, last = 0;
            int fields = sscanf(item, "%d-%d", &first, &last);
            if (fields == 1)
                last = first;
            if (fields < 1 || first < 1 || last > 4094 || first > last) {
                free(list);
                return qm_fail(err, 400, "%s: invalid VLAN '%s' in trunks '%s'", net->key, item,
                               net->trunks);
            }
            rc = nl_bridge_vlan(sock, tap->index, true, first, last, 0);
            if (rc < 0) {
                qm_fail(err, 500, "unable to add VLAN %s to %s on bridge %s: %s", item, tap->name,
                        net->bridge, nl_strerror(sock, rc));
                free(list);
                return -1;
            }
        }
        free(list);
    } else if (!net->tag) {
        rc = nl_bridge_vlan(sock, tap->index, true, 2, 4094, 0);
        if (rc < 0)
            return qm_fail(err, 500, "unable to add VLANs 2-4094 to %s on bridge %s: %s",
                           tap->name, net->bridge, nl_strerror(sock, rc));
    }
    int pvid = net->tag ? net->tag : 1;
    rc = nl_bridge_vlan(sock, tap->index, true, pvid, pvid,
                        BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED);
    if (rc < 0)
        return qm_fail(err, 500, "unable to add VLAN %d to %s on bridge %s: %s", pvid, tap->name,
                       net->bridge, nl_strerror(sock, rc));
    return 0;
}

/*
 * Returns the bridge that carries VLAN tag on a bridge without VLAN
 * filtering, as Proxmox VE does: {bridge}v{tag}, with a VLAN link
 * {port}.{tag} of every physical port of the bridge as its ports. Creates
 * what is missing.
 */
static int activate_bridge_vlan(struct nl_socket *sock, const struct nl_link *bridge, int tag,
                                struct nl_link *vlan_bridge, struct qm_error *err)
{
    char name[64];
    struct nl_link *ports = NULL;
    size_t nports = 0;

    snprintf(name, sizeof(name), "%sv%d", bridge->name, tag);
    if (strlen(name) >= IF_NAMESIZE)
        return qm_fail(err, 400, "the VLAN bridge name '%s' is too long", name);
    int rc = nl_link_list_ports(sock, bridge->index, &ports, &nports);
    if (rc < 0)
        return qm_fail(err, 500, "unable to list the ports of bridge %s: %s", bridge->name,
                       nl_strerror(sock, rc));

    /* Physical ports: Ethernet devices that are not virtual links of some kind. */
    size_t nphysical = 0;
    for (size_t i = 0; i < nports; i++)
        if (ports[i].type == 1 /* ARPHRD_ETHER */ && ports[i].kind[0] == '\0')
            ports[nphysical++] = ports[i];
    if (nphysical == 0) {
        free(ports);
        return qm_fail(err, 400, "bridge %s is not VLAN-aware and has no physical port for "
                       "VLAN %d", bridge->name, tag);
    }

    rc = nl_link_get(sock, name, vlan_bridge);
    if (rc == -ENODEV) {
        rc = nl_link_add_bridge(sock, name, bridge->mtu);
        if (rc == 0 || rc == -EEXIST)
            rc = nl_link_get(sock, name, vlan_bridge);
    }
    if (rc < 0) {
        free(ports);
        return qm_fail(err, 500, "unable to create bridge %s for VLAN %d: %s", name, tag,
                       nl_strerror(sock, rc));
    }
    disable_ipv6(name);

    for (size_t i = 0; i < nphysical; i++) {
        char vlan_name[64];
        struct nl_link vlan;
        snprintf(vlan_name, sizeof(vlan_name), "%s.%d", ports[i].name, tag);
        if (strlen(vlan_name) >= IF_NAMESIZE) {
            free(ports);
            return qm_fail(err, 400, "the VLAN interface name '%s' is too long", vlan_name);
        }
        rc = nl_link_get(sock, vlan_name, &vlan);
        if (rc == -ENODEV) {
            rc = nl_link_add_vlan(sock, vlan_name, ports[i].index, tag);
            if (rc == 0 || rc == -EEXIST)
                rc = nl_link_get(sock, vlan_name, &vlan);
            disable_ipv6(vlan_name);
        }
        if (rc == 0)
            rc = nl_link_set(sock, vlan.index, 0, IFF_UP, IFF_UP);
        if (rc < 0) {
            qm_fail(err, 500, "unable to add VLAN %d to interface %s: %s", tag, ports[i].name,
                    nl_strerror(sock, rc));
            free(ports);
            return -1;
        }
        if (vlan.master && vlan.master != vlan_bridge->index) {
            qm_fail(err, 409, "interface %s already is a port of another bridge", vlan_name);
            free(ports);
            return -1;
        }
        if (!vlan.master) {
            rc = nl_link_set(sock, vlan.index, bridge->mtu, 0, 0);
            if (rc == 0)
                rc = nl_link_set_master(sock, vlan.index, vlan_bridge->index);
            if (rc < 0) {
                qm_fail(err, 500, "unable to add %s to bridge %s: %s", vlan_name, name,
                        nl_strerror(sock, rc));
                free(ports);
                return -1;
            }
        }
    }
    free(ports);

    rc = nl_link_set(sock, vlan_bridge->index, bridge->mtu, IFF_UP, IFF_UP);
    if (rc < 0)
        return qm_fail(err, 500, "unable to bring bridge %s up: %s", name, nl_strerror(sock, rc));
    return 0;
}

/* Runs tc with args (NULL-terminated, without argv[0]); returns its exit status or -1. */
static int run_tc(const char *const *args, bool quiet)
{
    const char *argv[16] = {TC_PATH};
    size_t n = 1;
    posix_spawn_file_actions_t actions;
    pid_t pid;
    int status;

    while (args[n - 1] && n < QM_ARRAY_SIZE(argv) - 1) {
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    posix_spawn_file_actions_init(&actions);
    if (quiet) {
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    }
    int rc = posix_spawn(&pid, TC_PATH, &actions, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0)
        return -1;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/*
 * Limits the tap to rate MB/s in both directions with tc, as Proxmox VE
 * does: an HTB class as the root qdisc for what the guest receives, and an
 * ingress policer for what it sends, each with a burst of 1 MiB.
 */
static int set_rate_limit(const char *ifname, double rate, struct qm_error *err)
{
    char rate_arg[64];
    const char *const burst = "1048576b";

    /* Old limits of a reused name; these fail when there are none. */
    run_tc((const char *const[]){"qdisc", "del", "dev", ifname, "ingress", NULL}, true);
    run_tc((const char *const[]){"qdisc", "del", "dev", ifname, "root", NULL}, true);
    if (rate <= 0)
        return 0;

    snprintf(rate_arg, sizeof(rate_arg), "%lldbps", (long long)(rate * 1024 * 1024));
    const char *const *commands[] = {
        (const char *const[]){"qdisc", "add", "dev", ifname, "root", "handle", "1:", "htb",
                              "default", "1", NULL},
        (const char *const[]){"class", "add", "dev", ifname, "parent", "1:", "classid", "1:1",
                              "htb", "rate", rate_arg, "burst", burst, NULL},
        (const char *const[]){"qdisc", "add", "dev", ifname, "handle", "ffff:", "ingress", NULL},
        (const char *const[]){"filter", "add", "dev", ifname, "parent", "ffff:", "prio", "50",
                              "basic", "police", "rate", rate_arg, "burst", burst, "mtu", "64kb",
                              "drop", NULL},
    };
    for (size_t i = 0; i < QM_ARRAY_SIZE(commands); i++) {
        int status = run_tc(commands[i], false);
        if (status != 0)
            return qm_fail(err, 500, "unable to limit %s to %g MB/s: '%s %s %s' failed%s", ifname,
                           rate, TC_PATH, commands[i][0], commands[i][1],
                           status < 0 ? " to run" : "");
    }
    return 0;
}

static int plug(const char *ifname, bool hotplug, struct qm_error *err)
{
    struct net_conf net;
    struct nl_socket sock;
    struct nl_link tap, bridge;
    int vmid, index, rc;

    if (parse_ifname(ifname, &vmid, &index, err) < 0)
        return -1;
    if (load_net_conf(vmid, index, hotplug, &net, err) < 0)
        return -1;
    rc = nl_open(&sock);
    if (rc < 0) {
        net_conf_free(&net);
        return qm_fail(err, 500, "unable to open a netlink socket: %s", strerror(-rc));
    }

    rc = nl_link_get(&sock, ifname, &tap);
    if (rc < 0) {
        qm_fail(err, 500, "unable to find interface %s: %s", ifname, nl_strerror(&sock, rc));
        goto fail;
    }
    rc = nl_link_get(&sock, net.bridge, &bridge);
    if (rc == -ENODEV) {
        qm_fail(err, 400, "unable to plug %s into bridge '%s': the bridge does not exist",
                ifname, net.bridge);
        goto fail;
    }
    if (rc < 0) {
        qm_fail(err, 500, "unable to read bridge '%s': %s", net.bridge, nl_strerror(&sock, rc));
        goto fail;
    }
    if (strcmp(bridge.kind, "bridge") != 0) {
        qm_fail(err, 400, "unable to plug %s into '%s': it is not a Linux bridge%s%s%s", ifname,
                net.bridge, bridge.kind[0] ? " (kind " : "", bridge.kind,
                bridge.kind[0] ? ")" : "");
        goto fail;
    }
    if (!bridge.vlan_filtering && net.trunks) {
        qm_fail(err, 400, "unable to plug %s into bridge %s: trunks need a VLAN-aware bridge",
                ifname, net.bridge);
        goto fail;
    }
    if (!bridge.vlan_filtering && net.tag) {
        struct nl_link vlan_bridge;
        if (activate_bridge_vlan(&sock, &bridge, net.tag, &vlan_bridge, err) < 0)
            goto fail;
        bridge = vlan_bridge;
    }
    if (net.firewall)
        /* NOTE: no firewall bridge (fwbr{vmid}i{n}) is created, as with nftables in Proxmox VE. */
        fprintf(stderr, "warning: %s: firewall=1 has no effect, %s is plugged into %s directly\n",
                net.key, ifname, bridge.name);

    /*
     * NOTE: Proxmox VE gives the tap the bridge's MTU and mtu= only to the guest (host_mtu).
     * A smaller tap MTU also lowers a bridge MTU that was not set explicitly.
     */
    int mtu = net.mtu > 1 ? net.mtu : bridge.mtu;
    if (mtu > bridge.mtu) {
        qm_fail(err, 400, "unable to set MTU %d on %s: bridge %s has the smaller MTU %d", mtu,
                ifname, bridge.name, bridge.mtu);
        goto fail;
    }
    disable_ipv6(ifname);
    rc = nl_link_set(&sock, tap.index, mtu, IFF_UP | IFF_PROMISC, IFF_UP | IFF_PROMISC);
    if (rc < 0) {
        qm_fail(err, 500, "unable to bring %s up with MTU %d: %s", ifname, mtu,
                nl_strerror(&sock, rc));
        goto fail;
    }
    rc = nl_link_set_master(&sock, tap.index, bridge.index);
    if (rc < 0) {
        qm_fail(err, 500, "unable to plug %s into bridge %s: %s", ifname, bridge.name,
                nl_strerror(&sock, rc));
        goto fail;
    }
    if (bridge.vlan_filtering && plug_vlans(&sock, &tap, &net, err) < 0)
        goto fail;
    if (net.rate > 0 && set_rate_limit(ifname, net.rate, err) < 0)
        goto fail;

    nl_close(&sock);
    net_conf_free(&net);
    return 0;
fail:
    nl_close(&sock);
    net_conf_free(&net);
    return -1;
}

/* Detaches the tap from its bridge; a tap that is already gone is fine. */
static int unplug(const char *ifname, struct qm_error *err)
{
    struct nl_socket sock;
    struct nl_link tap;
    int vmid, index;

    if (parse_ifname(ifname, &vmid, &index, err) < 0)
        return -1;
    int rc = nl_open(&sock);
    if (rc < 0)
        return qm_fail(err, 500, "unable to open a netlink socket: %s", strerror(-rc));
    rc = nl_link_get(&sock, ifname, &tap);
    if (rc == 0 && tap.master)
        rc = nl_link_set_master(&sock, tap.index, 0);
    if (rc < 0 && rc != -ENODEV) {
        qm_fail(err, 500, "unable to detach %s from its bridge: %s", ifname,
                nl_strerror(&sock, rc));
        nl_close(&sock);
        return -1;
    }
    nl_close(&sock);
    return 0;
}

static void usage(const char *program)
{
    fprintf(stderr,
            "usage: %s [--hotplug] IFNAME    plug tap{vmid}i{n} into the bridge of net{n}\n"
            "       %s --down IFNAME         detach it from its bridge\n",
            program, program);
}

int main(int argc, char **argv)
{
    const char *slash = strrchr(argv[0], '/');
    const char *program = slash ? slash + 1 : argv[0];
    /* Installed as pve-bridgedown, the program unplugs. */
    bool down = qm_str_ends(program, "bridgedown");
    bool hotplug = false;
    struct qm_error err;
    int i = 1;

    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--down") == 0) {
            down = true;
        } else if (strcmp(argv[i], "--hotplug") == 0) {
            hotplug = true;
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(program);
            return 0;
        } else {
            fprintf(stderr, "%s: unknown option '%s'\n", program, argv[i]);
            usage(program);
            return 2;
        }
    }
    if (i + 1 != argc) {
        fprintf(stderr, "%s: expected one interface name\n", program);
        usage(program);
        return 2;
    }
    qm_error_clear(&err);
    int rc = down ? unplug(argv[i], &err) : plug(argv[i], hotplug, &err);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", program, err.msg);
        return 1;
    }
    return 0;
}
