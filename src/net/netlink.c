/* Synchronous rtnetlink requests over one NETLINK_ROUTE socket. */
#include "netlink.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <linux/if_bridge.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

/* A request under construction: one message with an ifinfomsg header. */
struct nl_msg {
    union {
        struct nlmsghdr hdr;
        char buf[4096];
    };
};

static struct ifinfomsg *msg_init(struct nl_msg *msg, uint16_t type, uint16_t flags,
                                  unsigned char family, int index)
{
    memset(msg, 0, sizeof(*msg));
    msg->hdr.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg));
    msg->hdr.nlmsg_type = type;
    msg->hdr.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
    struct ifinfomsg *ifi = NLMSG_DATA(&msg->hdr);
    ifi->ifi_family = family;
    ifi->ifi_index = index;
    return ifi;
}

static struct rtattr *attr_put(struct nl_msg *msg, unsigned short type, const void *data,
                               size_t len)
{
    size_t offset = NLMSG_ALIGN(msg->hdr.nlmsg_len);

    /* Every request here is far smaller than the buffer. */
    if (offset + RTA_SPACE(len) > sizeof(msg->buf))
        abort();
    struct rtattr *rta = (struct rtattr *)(msg->buf + offset);
    rta->rta_type = type;
    rta->rta_len = (unsigned short)RTA_LENGTH(len);
    if (len)
        memcpy(RTA_DATA(rta), data, len);
    msg->hdr.nlmsg_len = (uint32_t)(offset + RTA_SPACE(len));
    return rta;
}

static void attr_put_u32(struct nl_msg *msg, unsigned short type, uint32_t value)
{
    attr_put(msg, type, &value, sizeof(value));
}

static void attr_put_str(struct nl_msg *msg, unsigned short type, const char *s)
{
    attr_put(msg, type, s, strlen(s) + 1);
}

static struct rtattr *nest_begin(struct nl_msg *msg, unsigned short type)
{
    return attr_put(msg, type, NULL, 0);
}

static void nest_end(struct nl_msg *msg, struct rtattr *nest)
{
    nest->rta_len = (unsigned short)(msg->buf + msg->hdr.nlmsg_len - (char *)nest);
}

int nl_open(struct nl_socket *sock)
{
    int one = 1;

    memset(sock, 0, sizeof(*sock));
    sock->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (sock->fd < 0)
        return -errno;
    /* Ask for the kernel's error text, without a copy of the request. */
    setsockopt(sock->fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof(one));
    setsockopt(sock->fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    if (bind(sock->fd, (struct sockaddr *)&local, sizeof(local)) < 0) {
        int rc = -errno;
        close(sock->fd);
        sock->fd = -1;
        return rc;
    }
    return 0;
}

void nl_close(struct nl_socket *sock)
{
    if (sock->fd >= 0)
        close(sock->fd);
    sock->fd = -1;
}

const char *nl_strerror(const struct nl_socket *sock, int rc)
{
    static char text[512];

    if (sock->ext_ack[0])
        snprintf(text, sizeof(text), "%s (%s)", strerror(-rc), sock->ext_ack);
    else
        snprintf(text, sizeof(text), "%s", strerror(-rc));
    return text;
}

/* Copies the NLMSGERR_ATTR_MSG text of an error or acknowledgement into sock->ext_ack. */
static void read_ext_ack(struct nl_socket *sock, const struct nlmsghdr *hdr)
{
    if (!(hdr->nlmsg_flags & NLM_F_ACK_TLVS))
        return;
    /* With NETLINK_CAP_ACK the attributes follow the nlmsgerr directly. */
    size_t offset = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct nlmsgerr));
    if (hdr->nlmsg_len < offset)
        return;
    const struct rtattr *rta = (const struct rtattr *)((const char *)hdr + offset);
    int len = (int)(hdr->nlmsg_len - offset);
    for (; RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
        if (rta->rta_type == NLMSGERR_ATTR_MSG) {
            snprintf(sock->ext_ack, sizeof(sock->ext_ack), "%.*s", (int)RTA_PAYLOAD(rta),
                     (const char *)RTA_DATA(rta));
            return;
        }
    }
}

typedef void (*nl_reply_fn)(const struct nlmsghdr *hdr, void *ctx);

/*
 * Sends msg and reads until its acknowledgement, error or NLMSG_DONE,
 * passing every other message of the reply to on_reply.
 */
static int transact(struct nl_socket *sock, struct nl_msg *msg, nl_reply_fn on_reply, void *ctx)
{
    static char buf[32768] __attribute__((aligned(NLMSG_ALIGNTO)));
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};

    sock->ext_ack[0] = '\0';
    msg->hdr.nlmsg_seq = ++sock->seq;
    if (sendto(sock->fd, msg->buf, msg->hdr.nlmsg_len, 0, (struct sockaddr *)&kernel,
               sizeof(kernel)) < 0)
        return -errno;
    for (;;) {
        ssize_t n = recv(sock->fd, buf, sizeof(buf), 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        int len = (int)n;
        for (struct nlmsghdr *hdr = (struct nlmsghdr *)buf; NLMSG_OK(hdr, (unsigned)len);
             hdr = NLMSG_NEXT(hdr, len)) {
            if (hdr->nlmsg_seq != sock->seq)
                continue;
            if (hdr->nlmsg_type == NLMSG_DONE)
                return 0;
            if (hdr->nlmsg_type == NLMSG_ERROR) {
                const struct nlmsgerr *e = NLMSG_DATA(hdr);
                read_ext_ack(sock, hdr);
                return e->error;
            }
            if (on_reply)
                on_reply(hdr, ctx);
        }
    }
}

static void parse_linkinfo(const struct rtattr *linkinfo, struct nl_link *link)
{
    int len = (int)RTA_PAYLOAD(linkinfo);
    const struct rtattr *info_data = NULL;

    for (const struct rtattr *rta = RTA_DATA(linkinfo); RTA_OK(rta, len);
         rta = RTA_NEXT(rta, len)) {
        if (rta->rta_type == IFLA_INFO_KIND)
            snprintf(link->kind, sizeof(link->kind), "%.*s", (int)RTA_PAYLOAD(rta),
                     (const char *)RTA_DATA(rta));
        else if (rta->rta_type == IFLA_INFO_DATA)
            info_data = rta;
    }
    if (!info_data || strcmp(link->kind, "bridge") != 0)
        return;
    len = (int)RTA_PAYLOAD(info_data);
    for (const struct rtattr *rta = RTA_DATA(info_data); RTA_OK(rta, len);
         rta = RTA_NEXT(rta, len))
        if (rta->rta_type == IFLA_BR_VLAN_FILTERING && RTA_PAYLOAD(rta) >= 1)
            link->vlan_filtering = *(const uint8_t *)RTA_DATA(rta) != 0;
}

static void parse_link(const struct nlmsghdr *hdr, struct nl_link *link)
{
    const struct ifinfomsg *ifi = NLMSG_DATA(hdr);
    int len = (int)IFLA_PAYLOAD(hdr);

    memset(link, 0, sizeof(*link));
    link->index = ifi->ifi_index;
    link->type = ifi->ifi_type;
    link->flags = ifi->ifi_flags;
    for (const struct rtattr *rta = IFLA_RTA(ifi); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
        switch (rta->rta_type) {
        case IFLA_IFNAME:
            snprintf(link->name, sizeof(link->name), "%.*s", (int)RTA_PAYLOAD(rta),
                     (const char *)RTA_DATA(rta));
            break;
        case IFLA_MTU:
            link->mtu = (int)*(const uint32_t *)RTA_DATA(rta);
            break;
        case IFLA_MASTER:
            link->master = (int)*(const uint32_t *)RTA_DATA(rta);
            break;
        case IFLA_LINKINFO:
            parse_linkinfo(rta, link);
            break;
        default:
            break;
        }
    }
}

struct get_ctx {
    struct nl_link *link;
    bool found;
};

static void on_get_reply(const struct nlmsghdr *hdr, void *ctx)
{
    struct get_ctx *get = ctx;

    if (hdr->nlmsg_type != RTM_NEWLINK)
        return;
    parse_link(hdr, get->link);
    get->found = true;
}

int nl_link_get(struct nl_socket *sock, const char *name, struct nl_link *link)
{
    struct nl_msg msg;
    struct get_ctx ctx = {.link = link};

    if (strlen(name) >= IF_NAMESIZE)
        return -ENODEV;
    msg_init(&msg, RTM_GETLINK, 0, AF_UNSPEC, 0);
    attr_put_str(&msg, IFLA_IFNAME, name);
    int rc = transact(sock, &msg, on_get_reply, &ctx);
    if (rc < 0)
        return rc;
    return ctx.found ? 0 : -ENODEV;
}

struct list_ctx {
    int master;
    struct nl_link *links;
    size_t n;
};

static void on_list_reply(const struct nlmsghdr *hdr, void *ctx)
{
    struct list_ctx *list = ctx;
    struct nl_link link;

    if (hdr->nlmsg_type != RTM_NEWLINK)
        return;
    parse_link(hdr, &link);
    if (link.master != list->master)
        return;
    struct nl_link *grown = realloc(list->links, (list->n + 1) * sizeof(*grown));
    if (!grown)
        abort();
    list->links = grown;
    list->links[list->n++] = link;
}

int nl_link_list_ports(struct nl_socket *sock, int master, struct nl_link **links, size_t *n)
{
    struct nl_msg msg;
    struct list_ctx ctx = {.master = master};

    msg_init(&msg, RTM_GETLINK, NLM_F_DUMP, AF_UNSPEC, 0);
    int rc = transact(sock, &msg, on_list_reply, &ctx);
    if (rc < 0) {
        free(ctx.links);
        return rc;
    }
    *links = ctx.links;
    *n = ctx.n;
    return 0;
}

int nl_link_set(struct nl_socket *sock, int index, int mtu, unsigned flags, unsigned mask)
{
    struct nl_msg msg;

    struct ifinfomsg *ifi = msg_init(&msg, RTM_NEWLINK, 0, AF_UNSPEC, index);
    ifi->ifi_flags = flags & mask;
    ifi->ifi_change = mask;
    if (mtu > 0)
        attr_put_u32(&msg, IFLA_MTU, (uint32_t)mtu);
    return transact(sock, &msg, NULL, NULL);
}

int nl_link_set_master(struct nl_socket *sock, int index, int master)
{
    struct nl_msg msg;

    msg_init(&msg, RTM_NEWLINK, 0, AF_UNSPEC, index);
    attr_put_u32(&msg, IFLA_MASTER, (uint32_t)master);
    return transact(sock, &msg, NULL, NULL);
}

int nl_link_add_bridge(struct nl_socket *sock, const char *name, int mtu)
{
    struct nl_msg msg;

    msg_init(&msg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, AF_UNSPEC, 0);
    attr_put_str(&msg, IFLA_IFNAME, name);
    if (mtu > 0)
        attr_put_u32(&msg, IFLA_MTU, (uint32_t)mtu);
    struct rtattr *linkinfo = nest_begin(&msg, IFLA_LINKINFO);
    attr_put_str(&msg, IFLA_INFO_KIND, "bridge");
    nest_end(&msg, linkinfo);
    return transact(sock, &msg, NULL, NULL);
}

int nl_link_add_vlan(struct nl_socket *sock, const char *name, int parent, int vid)
{
    struct nl_msg msg;
    uint16_t id = (uint16_t)vid;

    msg_init(&msg, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, AF_UNSPEC, 0);
    attr_put_str(&msg, IFLA_IFNAME, name);
    attr_put_u32(&msg, IFLA_LINK, (uint32_t)parent);
    struct rtattr *linkinfo = nest_begin(&msg, IFLA_LINKINFO);
    attr_put_str(&msg, IFLA_INFO_KIND, "vlan");
    struct rtattr *data = nest_begin(&msg, IFLA_INFO_DATA);
    attr_put(&msg, IFLA_VLAN_ID, &id, sizeof(id));
    nest_end(&msg, data);
    nest_end(&msg, linkinfo);
    return transact(sock, &msg, NULL, NULL);
}

int nl_bridge_vlan(struct nl_socket *sock, int index, bool add, int first, int last,
                   uint16_t flags)
{
    struct nl_msg msg;

    /* RTM_SETLINK and RTM_DELLINK of family AF_BRIDGE edit a port's VLANs. */
    msg_init(&msg, add ? RTM_SETLINK : RTM_DELLINK, 0, AF_BRIDGE, index);
    struct rtattr *spec = nest_begin(&msg, IFLA_AF_SPEC);
    if (first == last) {
        struct bridge_vlan_info info = {.flags = flags, .vid = (uint16_t)first};
        attr_put(&msg, IFLA_BRIDGE_VLAN_INFO, &info, sizeof(info));
    } else {
        struct bridge_vlan_info begin = {.flags = flags | BRIDGE_VLAN_INFO_RANGE_BEGIN,
                                         .vid = (uint16_t)first};
        struct bridge_vlan_info end = {.flags = flags | BRIDGE_VLAN_INFO_RANGE_END,
                                       .vid = (uint16_t)last};
        attr_put(&msg, IFLA_BRIDGE_VLAN_INFO, &begin, sizeof(begin));
        attr_put(&msg, IFLA_BRIDGE_VLAN_INFO, &end, sizeof(end));
    }
    nest_end(&msg, spec);
    return transact(sock, &msg, NULL, NULL);
}
