/* USB controllers, USB host pass-through and SPICE USB redirection. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"

/* Controllers other than qemu-xhci have 5 ports, so usb0 to usb4. */
#define OLD_MAX_USB 5
#define MAX_USB_DEVICES 14

/* Whether every USB device goes on one qemu-xhci controller (qemu-server 9.2 rule). */
static bool use_qemu_xhci(const struct gen *g)
{
    return gen_machine_at_least(g, 7, 1, 0) &&
           (strcmp(g->ostype, "l26") == 0 || g->winversion > 7);
}

static int check_usb_index(struct gen *g, int index, bool qemu_xhci)
{
    if (index >= OLD_MAX_USB && !qemu_xhci)
        return qm_fail(g->err, 400,
                       "using usb%d is only possible with machine type >= 7.1 and ostype l26 or"
                       " windows > 7",
                       index);
    return 0;
}

/* The devices of qemu-server's pve-usb.cfg, for QEMU builds that do not ship that file. */
static void add_pve_usb_layout(struct strvec *out)
{
    static const char *const devices[] = {
        "ich9-usb-ehci1,id=ehci,addr=1d.7,multifunction=on",
        "ich9-usb-uhci1,id=uhci-1,addr=1d.0,multifunction=on,masterbus=ehci.0,firstport=0",
        "ich9-usb-uhci2,id=uhci-2,addr=1d.1,multifunction=on,masterbus=ehci.0,firstport=2",
        "ich9-usb-uhci3,id=uhci-3,addr=1d.2,multifunction=on,masterbus=ehci.0,firstport=4",
    };

    for (size_t i = 0; i < QM_ARRAY_SIZE(devices); i++) {
        sv_push(out, "-device");
        sv_push(out, devices[i]);
    }
}

int gen_usb_controllers(struct gen *g)
{
    char addr[64];
    bool qemu_xhci = use_qemu_xhci(g);
    bool any_usb = false, usb2 = false, usb3 = false;
    bool arm = strcmp(g->arch, "aarch64") == 0;

    if (arm) {
        sv_push(&g->devices, "-device");
        sv_pushf(&g->devices, "usb-ehci,id=ehci%s", gen_pci_addr(g, "ehci", addr, sizeof(addr)));
    } else if (!g->q35) {
        sv_push(&g->devices, "-device");
        sv_pushf(&g->devices, "piix3-usb-uhci,id=uhci%s.0x2",
                 gen_pci_addr(g, "piix3", addr, sizeof(addr)));
    }
    for (int i = 0; i < MAX_USB_DEVICES; i++) {
        char key[16];
        snprintf(key, sizeof(key), "usb%d", i);
        const char *v = gen_get(g, key);
        if (!v)
            continue;
        if (check_usb_index(g, i, qemu_xhci) < 0)
            return -1;
        struct qm_propstr ps = {0};
        if (qm_propstr_parse(key, v, &ps, NULL) < 0)
            continue;
        any_usb = true;
        if (ps_bool(&ps, "usb3", false))
            usb3 = true;
        else
            usb2 = true;
        qm_propstr_free(&ps);
    }
    if (!qemu_xhci && !g->q35 && usb2 && !arm) {
        if (g->pve) {
            sv_push(&g->devices, "-readconfig");
            sv_push(&g->devices, "/usr/share/qemu-server/pve-usb.cfg");
        } else {
            add_pve_usb_layout(&g->devices);
        }
    }
    gen_pci_addr(g, "xhci", addr, sizeof(addr));
    if (qemu_xhci && any_usb) {
        sv_push(&g->devices, "-device");
        sv_pushf(&g->devices, "qemu-xhci,p2=15,p3=15,id=xhci%s", addr);
    } else if (usb3) {
        sv_push(&g->devices, "-device");
        sv_pushf(&g->devices, "nec-usb-xhci,id=xhci%s", addr);
    }
    return 0;
}

static bool all_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isxdigit((unsigned char)s[i]))
            return false;
    return true;
}

/* Parses "VENDOR:PRODUCT" (4 hex digits each, optional 0x) into vendor and product. */
static bool parse_usb_id(const char *s, char vendor[5], char product[5])
{
    if (strncmp(s, "0x", 2) == 0)
        s += 2;
    if (strlen(s) < 9 || !all_hex(s, 4) || s[4] != ':')
        return false;
    const char *p = s + 5;
    if (strncmp(p, "0x", 2) == 0)
        p += 2;
    if (strlen(p) != 4 || !all_hex(p, 4))
        return false;
    memcpy(vendor, s, 4);
    vendor[4] = '\0';
    memcpy(product, p, 4);
    product[4] = '\0';
    return true;
}

/* Parses "BUS-PORT(.PORT)*" (decimal). */
static bool parse_usb_path(const char *s, char **bus, char **port)
{
    const char *dash = strchr(s, '-');
    if (!dash || dash == s)
        return false;
    for (const char *c = s; c < dash; c++)
        if (!isdigit((unsigned char)*c))
            return false;
    const char *p = dash + 1;
    bool digit = false;
    for (const char *c = p; *c; c++) {
        if (isdigit((unsigned char)*c)) {
            digit = true;
        } else if (*c == '.' && digit) {
            digit = false;
        } else {
            return false;
        }
    }
    if (!digit)
        return false;
    *bus = qm_strndup(s, (size_t)(dash - s));
    *port = qm_strdup(p);
    return true;
}

static int usb_host_device(struct gen *g, const char *key, const struct qm_propstr *ps,
                           int port, struct strbuf *sb)
{
    const char *host = ps_get(ps, "host");
    const char *mapping = ps_get(ps, "mapping");
    char vendor[5], product[5];
    char *bus = NULL, *hostport = NULL;

    if (host && mapping)
        return qm_fail(g->err, 400, "%s: cannot set both 'host' and 'mapping'", key);
    if (mapping)
        return qm_fail(g->err, 400, "USB device mapping not found for '%s'", mapping);
    sb_add(sb, "usb-host");
    if (ps_bool(ps, "usb3", false) || port > 0) {
        sb_add(sb, ",bus=xhci.0");
        if (port > 0)
            sb_addf(sb, ",port=%d", port);
    }
    if (host && parse_usb_id(host, vendor, product)) {
        sb_addf(sb, ",vendorid=0x%s,productid=0x%s", vendor, product);
    } else if (host && parse_usb_path(host, &bus, &hostport)) {
        sb_addf(sb, ",hostbus=%s,hostport=%s", bus, hostport);
        free(bus);
        free(hostport);
    } else {
        return qm_fail(g->err, 400, "%s: no USB id or path given", key);
    }
    sb_addf(sb, ",id=%s", key);
    const char *bootindex = gen_bootindex(g, key);
    if (bootindex)
        sb_addf(sb, ",bootindex=%s", bootindex);
    return 0;
}

int gen_usb_devices(struct gen *g)
{
    bool qemu_xhci = use_qemu_xhci(g);
    /* SPICE redirection of USB 3 devices needs machine version 4.0. */
    bool spice_usb3 = gen_machine_at_least(g, 4, 0, 0);

    for (int i = 0; i < MAX_USB_DEVICES; i++) {
        char key[16];
        snprintf(key, sizeof(key), "usb%d", i);
        const char *v = gen_get(g, key);
        if (!v)
            continue;
        if (check_usb_index(g, i, qemu_xhci) < 0)
            return -1;
        struct qm_propstr ps = {0};
        if (qm_propstr_parse(key, v, &ps, NULL) < 0)
            continue;
        int port = qemu_xhci ? i + 1 : 0;
        const char *host = ps_get(&ps, "host");
        if (host && strcasecmp(host, "spice") == 0) {
            bool usb3 = ps_bool(&ps, "usb3", false);
            const char *bus = (usb3 && spice_usb3) || qemu_xhci ? "xhci" : "ehci";
            sv_push(&g->devices, "-chardev");
            sv_pushf(&g->devices, "spicevmc,id=usbredirchardev%d,name=usbredir", i);
            sv_push(&g->devices, "-device");
            if (port > 0)
                sv_pushf(&g->devices,
                         "usb-redir,chardev=usbredirchardev%d,id=usbredirdev%d,bus=%s.0,port=%d",
                         i, i, bus, port);
            else
                sv_pushf(&g->devices,
                         "usb-redir,chardev=usbredirchardev%d,id=usbredirdev%d,bus=%s.0", i, i,
                         bus);
            if (gen_bootindex(g, key))
                gen_warn(g, "warning: spice usb port set as bootdevice, ignoring");
        } else {
            struct strbuf sb = {0};
            if (usb_host_device(g, key, &ps, port, &sb) < 0) {
                sb_free(&sb);
                qm_propstr_free(&ps);
                return -1;
            }
            sv_push(&g->devices, "-device");
            sv_push(&g->devices, sb.buf);
            sb_free(&sb);
        }
        qm_propstr_free(&ps);
    }
    return 0;
}
