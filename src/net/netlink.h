/*
 * A small synchronous rtnetlink client: read links, change a link's MTU,
 * flags and master, create bridges and VLAN links, and edit the VLANs of a
 * bridge port.
 */
#ifndef QM_NET_NETLINK_H
#define QM_NET_NETLINK_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

struct nl_socket {
    int fd;
    uint32_t seq;
    char ext_ack[256];   /* the kernel's message for the last failed request, or "" */
};

/* A network interface as RTM_GETLINK reports it. */
struct nl_link {
    int index;
    char name[IF_NAMESIZE];
    unsigned type;           /* ARPHRD_* */
    unsigned flags;          /* IFF_* */
    int mtu;
    int master;              /* ifindex of the master (bridge), 0 for none */
    char kind[32];           /* IFLA_INFO_KIND: "bridge", "vlan", "tun", ...; "" for a NIC */
    bool vlan_filtering;     /* bridges only: the bridge is VLAN-aware */
};

/* Each function returns 0 or a negative errno; sock->ext_ack may explain it. */
int nl_open(struct nl_socket *sock);
void nl_close(struct nl_socket *sock);
/* Formats rc (a negative errno) and the kernel's message into a static buffer. */
const char *nl_strerror(const struct nl_socket *sock, int rc);

/* -ENODEV when there is no interface of that name. */
int nl_link_get(struct nl_socket *sock, const char *name, struct nl_link *link);
/* Fills *links (the caller frees it) with every interface whose master is master. */
int nl_link_list_ports(struct nl_socket *sock, int master, struct nl_link **links, size_t *n);

/* Sets the MTU (unless mtu is 0) and the flags in mask to the values in flags. */
int nl_link_set(struct nl_socket *sock, int index, int mtu, unsigned flags, unsigned mask);
/* Makes master (a bridge) the master of the link; master 0 detaches it. */
int nl_link_set_master(struct nl_socket *sock, int index, int master);
int nl_link_add_bridge(struct nl_socket *sock, const char *name, int mtu);
int nl_link_add_vlan(struct nl_socket *sock, const char *name, int parent, int vid);

/*
 * Adds (add true) or removes the VLANs first..last on a port of a
 * VLAN-aware bridge, with BRIDGE_VLAN_INFO_* flags (PVID needs first == last).
 */
int nl_bridge_vlan(struct nl_socket *sock, int index, bool add, int first, int last,
                   uint16_t flags);

#endif
