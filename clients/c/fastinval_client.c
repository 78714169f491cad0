/* SPDX-License-Identifier: MIT */
/*
 * fastinval_client.c - the C client of `fastinval serve` (protocol 1.1, docs/protocol.md). See fastinval_client.h.
 *
 * Every frame from the server is read whole (header, then exactly length - 16 bytes, with the length bounded first)
 * and checked before any field of it is used; the integers are encoded and decoded byte by byte, little-endian.
 */
#define _GNU_SOURCE
#include "fastinval_client.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_MAX_REPLY (16u * 1024 * 1024 + 16)
#define DEFAULT_QUEUE 1024u
#define ITEM 32u
#define ERROR_PAYLOAD 8u

struct unit_record {
    uint32_t id;
    uint16_t kind;
};

struct fic_client {
    int fd;
    int broken;
    int busy;
    int negotiated;
    uint32_t next_id;
    int timeout_ms;
    uint32_t max_reply_bytes;
    struct fic_limits limits;
    struct fic_error last_error;
    uint8_t *tx;
    size_t tx_cap;
    uint8_t *rx;
    size_t rx_cap;
    fic_event_fn handler;
    void *handler_user;
    struct fic_event *queue;
    uint32_t queue_cap, queue_head, queue_count;
    uint64_t dropped, unknown;
    uint32_t events_this_request;
    struct unit_record *units;
    uint32_t unit_count, unit_cap;
};

/* ---- little-endian helpers ---- */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24); }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32); }

struct header {
    uint32_t length;
    uint16_t type;
    uint16_t status;
    uint32_t request_id;
    uint32_t unit_id;
};

/* ---- time ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Milliseconds left before @deadline (-1: none), for poll. */
static int remaining(int64_t deadline)
{
    if (deadline < 0) return -1;
    int64_t left = deadline - now_ms();
    if (left <= 0) return 0;
    return left > 0x7FFFFFFF ? 0x7FFFFFFF : (int)left;
}

static int64_t deadline_of(const struct fic_client *c) { return c->timeout_ms < 0 ? -1 : now_ms() + c->timeout_ms; }

/* ---- socket I/O ---- */

static int wait_for(int fd, short events, int64_t deadline)
{
    for (;;) {
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, remaining(deadline));
        if (n > 0) return 0;
        if (n == 0) return -ETIMEDOUT;
        if (errno != EINTR) return -errno;
    }
}

static int send_all(struct fic_client *c, const uint8_t *data, size_t length, const int *fds, uint32_t fd_count, int64_t deadline)
{
    size_t sent = 0;
    while (sent < length) {
        ssize_t n;
        if (sent == 0 && fd_count > 0) {
            /* The descriptors travel with the frame's first byte (docs/protocol.md §6.1). */
            union {
                struct cmsghdr align;
                char bytes[CMSG_SPACE(sizeof(int) * FIC_MAX_REGIONS)];
            } control;
            memset(&control, 0, sizeof control);
            struct iovec iov = {.iov_base = (void *)data, .iov_len = length};
            struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes,
                                 .msg_controllen = CMSG_SPACE(sizeof(int) * fd_count)};
            struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_RIGHTS;
            cm->cmsg_len = CMSG_LEN(sizeof(int) * fd_count);
            memcpy(CMSG_DATA(cm), fds, sizeof(int) * fd_count);
            n = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
        } else {
            n = send(c->fd, data + sent, length - sent, MSG_NOSIGNAL);
        }
        if (n > 0) {
            sent += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_for(c->fd, POLLOUT, deadline);
            if (rc < 0) return rc;
            continue;
        }
        return n < 0 ? -errno : -EIO;
    }
    return 0;
}

static int recv_exact(struct fic_client *c, uint8_t *buffer, size_t length, int64_t deadline)
{
    size_t got = 0;
    while (got < length) {
        ssize_t n = recv(c->fd, buffer + got, length - got, 0);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0) return -ECONNRESET;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int rc = wait_for(c->fd, POLLIN, deadline);
            if (rc < 0) return rc;
            continue;
        }
        return -errno;
    }
    return 0;
}

static int reserve(uint8_t **buffer, size_t *capacity, size_t need)
{
    if (need <= *capacity) return 0;
    size_t cap = *capacity ? *capacity : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    uint8_t *p = realloc(*buffer, cap);
    if (!p) return -ENOMEM;
    *buffer = p;
    *capacity = cap;
    return 0;
}

/* Reads one whole frame into c->rx; the payload is c->rx + 16. */
static int read_frame(struct fic_client *c, struct header *h, int64_t deadline)
{
    int rc = reserve(&c->rx, &c->rx_cap, FIC_HEADER_SIZE);
    if (rc < 0) return rc;
    rc = recv_exact(c, c->rx, FIC_HEADER_SIZE, deadline);
    if (rc < 0) return rc;
    h->length = get32(c->rx);
    h->type = get16(c->rx + 4);
    h->status = get16(c->rx + 6);
    h->request_id = get32(c->rx + 8);
    h->unit_id = get32(c->rx + 12);
    if (h->length < FIC_HEADER_SIZE) return -EPROTO;
    if (h->length > c->max_reply_bytes) return -EMSGSIZE;
    rc = reserve(&c->rx, &c->rx_cap, h->length);
    if (rc < 0) return rc;
    return recv_exact(c, c->rx + FIC_HEADER_SIZE, h->length - FIC_HEADER_SIZE, deadline);
}

/* ---- units ---- */

static int find_unit(const struct fic_client *c, uint32_t id)
{
    for (uint32_t i = 0; i < c->unit_count; i++)
        if (c->units[i].id == id) return (int)i;
    return -1;
}

static int add_unit(struct fic_client *c, uint32_t id, uint16_t kind)
{
    if (c->unit_count == c->unit_cap) {
        uint32_t cap = c->unit_cap ? c->unit_cap * 2 : 16;
        struct unit_record *p = realloc(c->units, cap * sizeof *p);
        if (!p) return -ENOMEM;
        c->units = p;
        c->unit_cap = cap;
    }
    c->units[c->unit_count].id = id;
    c->units[c->unit_count].kind = kind;
    c->unit_count++;
    return 0;
}

int fic_unit_kind(const struct fic_client *c, uint32_t unit)
{
    if (!c) return 0;
    int i = find_unit(c, unit);
    return i < 0 ? 0 : c->units[i].kind;
}

/* ---- events ---- */

static void deliver(struct fic_client *c, const struct fic_event *e)
{
    if (c->handler) {
        c->handler(c->handler_user, e);
        return;
    }
    if (c->queue_count == c->queue_cap) {
        c->dropped++;
        return;
    }
    c->queue[(c->queue_head + c->queue_count) % c->queue_cap] = *e;
    c->queue_count++;
}

/* Checks and delivers an event frame that arrived while request (@type, @unit) waited for its reply. */
static int on_event(struct fic_client *c, const struct header *h, uint16_t type, uint32_t unit)
{
    const uint8_t *p = c->rx + FIC_HEADER_SIZE;
    uint32_t length = h->length - FIC_HEADER_SIZE;
    int known = c->limits.minor >= 1 && h->type >= FIC_EVENT_VTD_COMPLETION && h->type <= FIC_EVENT_DEVICE_TLB_TIMEOUT;
    if (!known) {
        c->unknown++; /* skipped by its length, as the protocol says */
        return 0;
    }
    if (length < 32 || h->status != 0 || h->request_id != 0) return -EPROTO;
    if (type != FIC_REG_WRITE || h->unit_id != unit) return -EPROTO; /* events are effects of the unit's register writes */
    int kind = fic_unit_kind(c, h->unit_id);
    uint8_t delivery = p[12];
    switch (h->type) {
    case FIC_EVENT_VTD_COMPLETION:
    case FIC_EVENT_VTD_FAULT:
        if (kind != FIC_KIND_VTD || delivery != FIC_DELIVERY_MSI) return -EPROTO;
        break;
    case FIC_EVENT_SMMU_CMD_SYNC:
        if (kind != FIC_KIND_SMMUV3 || delivery < FIC_DELIVERY_MSI || delivery > FIC_DELIVERY_WAKE_UP) return -EPROTO;
        break;
    case FIC_EVENT_SMMU_GERROR:
        if (kind != FIC_KIND_SMMUV3 || (delivery != FIC_DELIVERY_MSI && delivery != FIC_DELIVERY_WIRED)) return -EPROTO;
        break;
    default: /* FIC_EVENT_DEVICE_TLB_TIMEOUT */
        if ((kind != FIC_KIND_VTD && kind != FIC_KIND_SMMUV3) || delivery != FIC_DELIVERY_NONE) return -EPROTO;
        break;
    }
    if (delivery != FIC_DELIVERY_MSI && (get64(p) != 0 || get32(p + 8) != 0)) return -EPROTO; /* only an MSI has these */
    if (c->limits.max_events_per_request && c->events_this_request >= c->limits.max_events_per_request) return -EPROTO;
    c->events_this_request++;
    struct fic_event e;
    memset(&e, 0, sizeof e);
    e.type = h->type;
    e.delivery = delivery;
    e.unit = h->unit_id;
    e.address = get64(p);
    e.data = get32(p + 8);
    e.a = get32(p + 16);
    e.b = get32(p + 20);
    e.c = get64(p + 24);
    deliver(c, &e);
    return 0;
}

/* ---- requests ---- */

static void set_error(struct fic_client *c, const struct header *h, uint16_t type)
{
    c->last_error.status = h->status;
    c->last_error.request_type = type;
    c->last_error.detail = h->length - FIC_HEADER_SIZE >= 4 ? get32(c->rx + FIC_HEADER_SIZE) : 0;
    c->last_error.request_id = h->request_id;
    c->last_error.unit_id = h->unit_id;
}

static int broken(struct fic_client *c, int rc)
{
    c->broken = 1;
    return rc;
}

/* Makes room for a request of @payload_length bytes in c->tx; returns the payload or NULL (*rc set). */
static uint8_t *begin(struct fic_client *c, uint64_t payload_length, int *rc)
{
    uint64_t total = FIC_HEADER_SIZE + payload_length;
    if (total > 0xFFFFFFFFu || (c->limits.max_frame_bytes && total > c->limits.max_frame_bytes)) {
        *rc = -EMSGSIZE;
        return NULL;
    }
    *rc = reserve(&c->tx, &c->tx_cap, (size_t)total);
    if (*rc < 0) return NULL;
    memset(c->tx, 0, (size_t)total);
    return c->tx + FIC_HEADER_SIZE;
}

/*
 * Sends the request built in c->tx (payload of @payload_length bytes) and reads frames until its reply, passing events
 * on. Returns 0 with *@reply / *@reply_length set to the success reply's payload (in c->rx), a typed error, or a client
 * error (the connection then broken).
 */
static int transact(struct fic_client *c, uint16_t type, uint32_t unit, uint32_t payload_length, const int *fds,
                    uint32_t fd_count, const uint8_t **reply, uint32_t *reply_length)
{
    if (c->busy) return -EBUSY;
    if (c->broken) return -ENOTCONN;
    uint32_t id = c->next_id;
    c->next_id = c->next_id == 0xFFFFFFFFu ? 1 : c->next_id + 1;
    put32(c->tx, FIC_HEADER_SIZE + payload_length);
    put16(c->tx + 4, type);
    put16(c->tx + 6, 0);
    put32(c->tx + 8, id);
    put32(c->tx + 12, unit);
    c->busy = 1;
    c->events_this_request = 0;
    int64_t deadline = deadline_of(c);
    int rc = send_all(c, c->tx, FIC_HEADER_SIZE + payload_length, fds, fd_count, deadline);
    struct header h;
    if (rc == -EPIPE || rc == -ECONNRESET) {
        /* The server may have closed after a FRAME_ERROR it sent before reading the rest: read that answer. */
        int r2 = read_frame(c, &h, now_ms());
        if (r2 == 0 && h.type == FIC_FRAME_ERROR && h.status >= FIC_STATUS_FRAME_TOO_LARGE &&
            h.status <= FIC_STATUS_CONNECTION_LIMIT && h.length >= FIC_HEADER_SIZE + ERROR_PAYLOAD) {
            set_error(c, &h, type);
            rc = FIC_ERROR(h.status);
        }
    }
    if (rc < 0) {
        c->busy = 0;
        return broken(c, rc);
    }
    for (;;) {
        rc = read_frame(c, &h, deadline);
        if (rc < 0) break;
        uint32_t length = h.length - FIC_HEADER_SIZE;
        const uint8_t *p = c->rx + FIC_HEADER_SIZE;
        if (h.type >= FIC_FIRST_EVENT && h.type <= FIC_LAST_EVENT) {
            rc = on_event(c, &h, type, unit);
            if (rc < 0) break;
            continue;
        }
        if (h.type == FIC_FRAME_ERROR) {
            /* The server could not read the frame and closes the connection (docs/protocol.md §5). */
            if (h.status < FIC_STATUS_FRAME_TOO_LARGE || h.status > FIC_STATUS_CONNECTION_LIMIT || length < ERROR_PAYLOAD ||
                h.unit_id != 0 || (h.request_id != id && h.request_id != 0)) {
                rc = -EPROTO;
                break;
            }
            set_error(c, &h, type);
            rc = FIC_ERROR(h.status);
            break;
        }
        if (h.type != (type | FIC_REPLY_BIT) || h.request_id != id) {
            rc = -EPROTO;
            break;
        }
        if (h.status != 0) {
            if (length < ERROR_PAYLOAD || h.unit_id != unit) {
                rc = -EPROTO;
                break;
            }
            set_error(c, &h, type);
            c->busy = 0;
            return FIC_ERROR(h.status); /* the stream is in step: the connection goes on */
        }
        if (type == FIC_CREATE) {
            /* The new unit's id: in the header and at payload offset 0, never 0, not one this connection holds. */
            if (h.unit_id == 0 || length < 8 || get32(p) != h.unit_id || find_unit(c, h.unit_id) >= 0) {
                rc = -EPROTO;
                break;
            }
            rc = add_unit(c, h.unit_id, payload_length >= 2 ? get16(c->tx + FIC_HEADER_SIZE) : 0);
            if (rc < 0) break;
        } else if (h.unit_id != unit) {
            rc = -EPROTO;
            break;
        }
        if (type == FIC_DESTROY) {
            int i = find_unit(c, unit);
            if (i >= 0) c->units[i] = c->units[--c->unit_count];
        }
        if (type != FIC_REG_WRITE && c->events_this_request != 0) {
            rc = -EPROTO; /* unreachable: on_event refuses them */
            break;
        }
        *reply = p;
        *reply_length = length;
        c->busy = 0;
        return 0;
    }
    c->busy = 0;
    return broken(c, rc);
}

/* ---- connecting ---- */

static int make_client(int fd, const struct fic_options *o, struct fic_client **out)
{
    if (o && (o->size != sizeof *o || o->reserved != 0 || (o->flags & ~(FIC_CONNECT_NO_HELLO | FIC_CONNECT_MINOR)) != 0))
        return -EINVAL;
    struct fic_client *c = calloc(1, sizeof *c);
    if (!c) return -ENOMEM;
    c->fd = fd;
    c->next_id = 1;
    c->timeout_ms = o && o->timeout_ms != 0 ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    if (c->timeout_ms < 0) c->timeout_ms = -1;
    c->max_reply_bytes = o && o->max_reply_bytes ? o->max_reply_bytes : DEFAULT_MAX_REPLY;
    if (c->max_reply_bytes < FIC_HEADER_SIZE + 64) c->max_reply_bytes = FIC_HEADER_SIZE + 64;
    c->queue_cap = o && o->event_queue_capacity ? o->event_queue_capacity : DEFAULT_QUEUE;
    c->queue = calloc(c->queue_cap, sizeof *c->queue);
    if (!c->queue) {
        free(c);
        return -ENOMEM;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        int e = -errno;
        free(c->queue);
        free(c);
        return e;
    }
    if (!(o && (o->flags & FIC_CONNECT_NO_HELLO))) {
        uint16_t minor = o && (o->flags & FIC_CONNECT_MINOR) ? o->minor : FIC_PROTOCOL_MINOR;
        int rc = fic_hello(c, FIC_PROTOCOL_MAJOR, minor, NULL);
        if (rc < 0) {
            c->fd = -1;
            fic_close(c);
            return rc;
        }
    }
    *out = c;
    return 0;
}

int fic_attach_fd(int fd, const struct fic_options *options, struct fic_client **out)
{
    if (fd < 0 || !out) {
        if (fd >= 0) close(fd);
        return -EINVAL;
    }
    if (options && options->size == sizeof *options && (options->flags & FIC_CONNECT_MINOR) && options->minor > FIC_PROTOCOL_MINOR) {
        close(fd);
        return -EINVAL;
    }
    int rc = make_client(fd, options, out);
    if (rc < 0) close(fd);
    return rc;
}

int fic_connect(const char *path, const struct fic_options *options, struct fic_client **out)
{
    if (!path || !out) return -EINVAL;
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof addr.sun_path) return -EINVAL;
    memcpy(addr.sun_path, path, n + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fic_attach_fd(fd, options, out);
}

int fic_hello(struct fic_client *c, uint16_t major, uint16_t minor, struct fic_limits *limits)
{
    if (!c) return -EINVAL;
    int rc;
    uint8_t *p = begin(c, 8, &rc);
    if (!p) return rc;
    put16(p, major);
    put16(p + 2, minor);
    const uint8_t *r;
    uint32_t n;
    rc = transact(c, FIC_HELLO, 0, 8, NULL, 0, &r, &n);
    if (rc < 0) return rc;
    struct fic_limits l;
    memset(&l, 0, sizeof l);
    if (n < 32) return broken(c, -EPROTO);
    l.major = get16(r);
    l.minor = get16(r + 2);
    if (l.major != major || l.minor > minor || (l.minor >= 1 && n < 40)) return broken(c, -EPROTO);
    l.max_frame_bytes = get32(r + 4);
    l.max_units_per_connection = get32(r + 8);
    l.max_outstanding_requests = get32(r + 12);
    l.max_connections = get32(r + 16);
    l.max_cache_entries = get32(r + 20);
    l.server_flags = get32(r + 24);
    if (l.max_frame_bytes < FIC_HEADER_SIZE + 8 || l.max_outstanding_requests == 0 || l.max_connections == 0)
        return broken(c, -EPROTO);
    if (l.minor >= 1) {
        l.max_events_per_request = get32(r + 32);
        l.max_fds_per_frame = get32(r + 36);
    }
    c->limits = l;
    c->negotiated = 1;
    if (limits) *limits = l;
    return 0;
}

void fic_close(struct fic_client *c)
{
    if (!c) return;
    if (c->fd >= 0) close(c->fd);
    free(c->tx);
    free(c->rx);
    free(c->queue);
    free(c->units);
    free(c);
}

const struct fic_limits *fic_limits(const struct fic_client *c) { return c ? &c->limits : NULL; }
int fic_fd(const struct fic_client *c) { return c ? c->fd : -1; }
int fic_is_broken(const struct fic_client *c) { return c ? c->broken : 1; }

int fic_last_error(const struct fic_client *c, struct fic_error *out)
{
    if (!c || !out) return -EINVAL;
    *out = c->last_error;
    return 0;
}

static const char *const status_names[] = {
    "OK", "MALFORMED", "UNKNOWN_TYPE", "VERSION", "HELLO_STATE", "UNKNOWN_UNIT", "UNIT_LIMIT", "INVALID_ARGUMENT",
    "UNSUPPORTED_KIND", "FRAME_TOO_LARGE", "BAD_LENGTH", "CONNECTION_LIMIT", "INTERNAL", "BAD_FD", "SHORT_FILE",
    "OVERLAP", "WRONG_KIND",
};

const char *fic_status_name(uint16_t status)
{
    return status < sizeof status_names / sizeof status_names[0] ? status_names[status] : "?";
}

const char *fic_strerror(int rc)
{
    if (rc >= 0) return "success";
    if (FIC_IS_PROTOCOL_ERROR(rc)) {
        uint16_t s = FIC_PROTOCOL_STATUS(rc);
        return s < sizeof status_names / sizeof status_names[0] ? status_names[s] : "unknown protocol error";
    }
    switch (-rc) {
    case EPROTO: return "malformed frame from the server";
    case EMSGSIZE: return "frame too large";
    case ECONNRESET: return "the server closed the connection";
    case ETIMEDOUT: return "no reply in time";
    case ENOTCONN: return "the connection is broken";
    case EBUSY: return "a request from inside the event handler";
    case EINVAL: return "invalid argument";
    case ENOMEM: return "out of memory";
    case ENOENT: return "no such socket";
    case ECONNREFUSED: return "connection refused";
    case EACCES: return "permission denied";
    case EPIPE: return "broken pipe";
    default: return "system error";
    }
}

/* ---- units ---- */

static void put_capacities(uint8_t *p, const struct fic_capacities *caps)
{
    if (!caps) return;
    put32(p + 8, caps->iotlb);
    put32(p + 12, caps->device_tlb);
    put32(p + 16, caps->config);
}

int fic_create_engine(struct fic_client *c, const struct fic_capacities *capacities, uint32_t *unit)
{
    if (!c || !unit) return -EINVAL;
    int rc;
    uint8_t *p = begin(c, 24, &rc);
    if (!p) return rc;
    put16(p, FIC_KIND_ENGINE);
    put_capacities(p, capacities);
    const uint8_t *r;
    uint32_t n;
    rc = transact(c, FIC_CREATE, 0, 24, NULL, 0, &r, &n);
    if (rc < 0) return rc;
    *unit = get32(r);
    return 0;
}

static int check_regions(const struct fic_region *regions, uint32_t count, int fds[FIC_MAX_REGIONS])
{
    if (count > FIC_MAX_REGIONS || (count > 0 && !regions)) return -EINVAL;
    for (uint32_t i = 0; i < count; i++) {
        if (regions[i].fd < 0) return -EINVAL;
        fds[i] = regions[i].fd;
    }
    return 0;
}

static void put_regions(uint8_t *p, const struct fic_region *regions, uint32_t count)
{
    for (uint32_t i = 0; i < count; i++, p += 24) {
        put64(p, regions[i].guest_physical_base);
        put64(p + 8, regions[i].length);
        put64(p + 16, regions[i].file_offset);
    }
}

static int create_shared(struct fic_client *c, uint16_t kind, const struct fic_capacities *capacities,
                         const struct fic_unit_options *options, const struct fic_region *regions, uint32_t count, uint32_t *unit)
{
    if (!c || !unit || count == 0) return -EINVAL;
    int fds[FIC_MAX_REGIONS];
    int rc = check_regions(regions, count, fds);
    if (rc < 0) return rc;
    uint32_t options_length = 16 + 24 * count;
    uint8_t *p = begin(c, 24 + options_length, &rc);
    if (!p) return rc;
    put16(p, kind);
    put32(p + 4, count);
    put_capacities(p, capacities);
    put32(p + 20, options_length);
    put32(p + 24, count);
    if (options) {
        put32(p + 28, options->feature_flags);
        memcpy(p + 32, options->params, 4);
    }
    put_regions(p + 40, regions, count);
    const uint8_t *r;
    uint32_t n;
    rc = transact(c, FIC_CREATE, 0, 24 + options_length, fds, count, &r, &n);
    if (rc < 0) return rc;
    *unit = get32(r);
    return 0;
}

int fic_create_vtd(struct fic_client *c, const struct fic_capacities *capacities, const struct fic_unit_options *options,
                   const struct fic_region *regions, uint32_t region_count, uint32_t *unit)
{
    return create_shared(c, FIC_KIND_VTD, capacities, options, regions, region_count, unit);
}

int fic_create_smmu(struct fic_client *c, const struct fic_capacities *capacities, const struct fic_unit_options *options,
                    const struct fic_region *regions, uint32_t region_count, uint32_t *unit)
{
    return create_shared(c, FIC_KIND_SMMUV3, capacities, options, regions, region_count, unit);
}

int fic_create_iommufd(struct fic_client *c, const struct fic_capacities *capacities, const struct fic_iommufd_options *options,
                       const struct fic_region *regions, uint32_t region_count, const struct fic_iommufd_device *devices,
                       uint32_t device_count, struct fic_iommufd_unit *out)
{
    if (!c || !options || !out || device_count > FIC_MAX_IOMMUFD_DEVICES || (device_count > 0 && !devices)) return -EINVAL;
    int fds[FIC_MAX_REGIONS];
    int rc = check_regions(regions, region_count, fds);
    if (rc < 0) return rc;
    uint32_t options_length = 16 + 24 * region_count + 8 * device_count;
    uint8_t *p = begin(c, 24 + options_length, &rc);
    if (!p) return rc;
    put16(p, FIC_KIND_IOMMUFD);
    put32(p + 4, region_count);
    put_capacities(p, capacities);
    put32(p + 20, options_length);
    put32(p + 24, region_count);
    put32(p + 28, options->flags);
    put32(p + 32, device_count);
    p[36] = options->engine_kind;
    put_regions(p + 40, regions, region_count);
    uint8_t *d = p + 40 + 24 * region_count;
    for (uint32_t i = 0; i < device_count; i++, d += 8) {
        d[0] = devices[i].iommu;
        d[1] = devices[i].flags;
        put32(d + 4, devices[i].stream_id);
    }
    const uint8_t *r;
    uint32_t n;
    rc = transact(c, FIC_CREATE, 0, 24 + options_length, fds, region_count, &r, &n);
    if (rc < 0) return rc;
    if (n < 8 + 8 * region_count + 4 * device_count) return broken(c, -EPROTO);
    memset(out, 0, sizeof *out);
    out->unit = get32(r);
    out->region_count = region_count;
    out->device_count = device_count;
    uint64_t previous_end = 0x10000;
    for (uint32_t i = 0; i < region_count; i++) {
        uint64_t a = get64(r + 8 + 8 * i);
        /* Ascending from 0x10000, 4 KiB aligned, each followed by at least one unmapped page (docs/protocol.md §6.4). */
        if ((a & 0xFFF) != 0 || a < previous_end) return broken(c, -EPROTO);
        out->user_address[i] = a;
        previous_end = a + regions[i].length + 0x1000;
    }
    for (uint32_t i = 0; i < device_count; i++) out->device_id[i] = get32(r + 8 + 8 * region_count + 4 * i);
    return 0;
}

int fic_destroy(struct fic_client *c, uint32_t unit)
{
    if (!c) return -EINVAL;
    int rc;
    if (!begin(c, 0, &rc)) return rc;
    const uint8_t *r;
    uint32_t n;
    return transact(c, FIC_DESTROY, unit, 0, NULL, 0, &r, &n);
}

/* ---- caches ---- */

static int fill(struct fic_client *c, uint32_t unit, uint16_t cache, const void *entries, uint32_t count, uint8_t *results)
{
    if (!c || (count > 0 && !entries)) return -EINVAL;
    int rc;
    uint8_t *p = begin(c, 8 + (uint64_t)ITEM * count, &rc);
    if (!p) return rc;
    put16(p, cache);
    put32(p + 4, count);
    for (uint32_t i = 0; i < count; i++) {
        uint8_t *e = p + 8 + ITEM * i;
        if (cache == FIC_CACHE_IOTLB) {
            const struct fastinval_iotlb_entry *x = (const struct fastinval_iotlb_entry *)entries + i;
            put64(e, x->input_address);
            put64(e + 8, x->output_address);
            put32(e + 16, x->address_space_id);
            put16(e + 20, x->domain_id);
            put16(e + 22, x->rights);
            e[24] = x->stage;
            e[25] = x->granule;
            e[26] = x->size_log2;
            e[27] = x->flags;
            put32(e + 28, x->reserved);
        } else if (cache == FIC_CACHE_DEVICE_TLB) {
            const struct fastinval_devtlb_entry *x = (const struct fastinval_devtlb_entry *)entries + i;
            put64(e, x->input_address);
            put64(e + 8, x->output_address);
            put32(e + 16, x->source_id);
            put32(e + 20, x->pasid);
            put16(e + 24, x->rights);
            e[26] = x->size_log2;
            e[27] = x->flags;
            put32(e + 28, x->reserved);
        } else {
            const struct fastinval_config_entry *x = (const struct fastinval_config_entry *)entries + i;
            put64(e, x->value);
            put32(e + 8, x->source_id);
            put32(e + 12, x->address_space_id);
            put16(e + 16, x->domain_id);
            e[18] = x->kind;
            e[19] = x->reserved0;
            put32(e + 20, x->reserved1); /* 24-31: the wire's reserved u64, zero */
        }
    }
    const uint8_t *r;
    uint32_t n;
    rc = transact(c, FIC_FILL, unit, 8 + ITEM * count, NULL, 0, &r, &n);
    if (rc < 0) return rc;
    if (n < 8 || get32(r) != count || n - 8 < count) return broken(c, -EPROTO);
    int accepted = 0;
    for (uint32_t i = 0; i < count; i++) {
        if (r[8 + i] > FASTINVAL_FILL_REJECTED) return broken(c, -EPROTO);
        if (r[8 + i] != FASTINVAL_FILL_REJECTED) accepted++;
    }
    if (results) memcpy(results, r + 8, count);
    return accepted;
}

int fic_fill_iotlb(struct fic_client *c, uint32_t unit, const struct fastinval_iotlb_entry *entries, uint32_t count, uint8_t *results)
{
    return fill(c, unit, FIC_CACHE_IOTLB, entries, count, results);
}

int fic_fill_device_tlb(struct fic_client *c, uint32_t unit, const struct fastinval_devtlb_entry *entries, uint32_t count,
                        uint8_t *results)
{
    return fill(c, unit, FIC_CACHE_DEVICE_TLB, entries, count, results);
}

int fic_fill_config(struct fic_client *c, uint32_t unit, const struct fastinval_config_entry *entries, uint32_t count,
                    uint8_t *results)
{
    return fill(c, unit, FIC_CACHE_CONFIG, entries, count, results);
}

static int lookup(struct fic_client *c, uint32_t unit, uint16_t cache, const void *queries, uint32_t count,
                  struct fic_lookup_result *results)
{
    if (!c || (count > 0 && (!queries || !results))) return -EINVAL;
    uint64_t payload = 8 + (uint64_t)ITEM * count;
    if (FIC_HEADER_SIZE + payload > c->max_reply_bytes) return -EMSGSIZE; /* its reply would be refused */
    int rc;
    uint8_t *p = begin(c, payload, &rc);
    if (!p) return rc;
    put16(p, cache);
    put32(p + 4, count);
    for (uint32_t i = 0; i < count; i++) {
        uint8_t *q = p + 8 + ITEM * i;
        if (cache == FIC_CACHE_IOTLB) {
            const struct fic_iotlb_query *x = (const struct fic_iotlb_query *)queries + i;
            put64(q, x->address);
            put32(q + 8, x->address_space_id);
            put16(q + 12, x->domain_id);
            q[14] = x->stage;
            q[15] = x->table_span_log2;
        } else if (cache == FIC_CACHE_DEVICE_TLB) {
            const struct fic_devtlb_query *x = (const struct fic_devtlb_query *)queries + i;
            put64(q, x->address);
            put32(q + 8, x->source_id);
            put32(q + 12, x->pasid);
        } else {
            const struct fic_config_query *x = (const struct fic_config_query *)queries + i;
            q[0] = x->kind;
            put32(q + 4, x->source_id);
            put32(q + 8, x->address_space_id);
        }
    }
    const uint8_t *r;
    uint32_t n;
    rc = transact(c, FIC_LOOKUP, unit, (uint32_t)payload, NULL, 0, &r, &n);
    if (rc < 0) return rc;
    if (n < 8 || get32(r) != count || (n - 8) / ITEM < count) return broken(c, -EPROTO);
    uint32_t hits = get32(r + 4), seen = 0;
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *x = r + 8 + ITEM * i;
        if (x[0] > 1) return broken(c, -EPROTO);
        if (x[0] == 0) {
            for (uint32_t k = 1; k < ITEM; k++)
                if (x[k] != 0) return broken(c, -EPROTO); /* a miss is 32 zero bytes */
        } else {
            seen++;
        }
    }
    if (seen != hits) return broken(c, -EPROTO);
    for (uint32_t i = 0; i < count; i++) {
        const uint8_t *x = r + 8 + ITEM * i;
        struct fic_lookup_result *o = &results[i];
        o->hit = x[0];
        o->size_log2 = x[1];
        o->global = x[2] & 1;
        o->kind = x[3];
        o->rights = get16(x + 4);
        o->domain_id = get16(x + 6);
        o->output = get64(x + 8);
        o->input_base = get64(x + 16);
        o->source_id = get32(x + 24);
        o->address_space_id = get32(x + 28);
    }
    return (int)hits;
}

int fic_lookup_iotlb(struct fic_client *c, uint32_t unit, const struct fic_iotlb_query *queries, uint32_t count,
                     struct fic_lookup_result *results)
{
    return lookup(c, unit, FIC_CACHE_IOTLB, queries, count, results);
}

int fic_lookup_device_tlb(struct fic_client *c, uint32_t unit, const struct fic_devtlb_query *queries, uint32_t count,
                          struct fic_lookup_result *results)
{
    return lookup(c, unit, FIC_CACHE_DEVICE_TLB, queries, count, results);
}

int fic_lookup_config(struct fic_client *c, uint32_t unit, const struct fic_config_query *queries, uint32_t count,
                      struct fic_lookup_result *results)
{
    return lookup(c, unit, FIC_CACHE_CONFIG, queries, count, results);
}

/* ---- descriptors, fault plan, figures ---- */

int fic_execute(struct fic_client *c, uint32_t unit, const struct fastinval_descriptor *descriptors, uint32_t count,
                uint8_t *statuses, struct fic_execute_result *result)
{
    if (!c || (count > 0 && !descriptors)) return -EINVAL;
    int rc;
    uint8_t *p = begin(c, 8 + (uint64_t)ITEM * count, &rc);
    if (!p) return rc;
    put32(p, count);
    for (uint32_t i = 0; i < count; i++) {
        const struct fastinval_descriptor *d = &descriptors[i];
        uint8_t *e = p + 8 + ITEM * i;
        e[0] = d->scope;
        e[1] = d->flags;
        e[2] = d->stages;
        e[3] = d->level_hint;
        e[4] = d->granule_hint;
        e[5] = d->config_kinds;
        put16(e + 6, d->domain_id);
        put32(e + 8, d->address_space_id);
        put32(e + 12, d->source_id);
        put64(e + 16, d->first);
        put64(e + 24, d->last);
    }
    const uint8_t *r;
    uint32_t n;
    rc = transact(c, FIC_EXECUTE, unit, 8 + ITEM * count, NULL, 0, &r, &n);
    if (rc < 0) return rc;
    if (n < 24 || get32(r + 20) != count || n - 24 < count) return broken(c, -EPROTO);
    uint32_t tally[4] = {0, 0, 0, 0};
    int32_t first = -1;
    for (uint32_t i = 0; i < count; i++) {
        uint8_t s = r[24 + i];
        if (s > FASTINVAL_STATUS_INVALID) return broken(c, -EPROTO);
        tally[s]++;
        if (s != FASTINVAL_STATUS_OK && first < 0) first = (int32_t)i;
    }
    struct fic_execute_result x = {get32(r), get32(r + 4), get32(r + 8), get32(r + 12), (int32_t)get32(r + 16)};
    if (x.ok != tally[0] || x.timed_out != tally[1] || x.completion_errors != tally[2] || x.invalid != tally[3] ||
        x.first_failure_index != first)
        return broken(c, -EPROTO);
    if (statuses) memcpy(statuses, r + 24, count);
    if (result) *result = x;
    return 0;
}

int fic_set_fault_plan(struct fic_client *c, uint32_t unit, const struct fastinval_fault_plan *plan)
{
    if (!c) return -EINVAL;
    struct fastinval_fault_plan none;
    memset(&none, 0, sizeof none);
    none.size = sizeof none;
    if (!plan) plan = &none;
    if (plan->size != sizeof *plan || plan->reserved != 0 || plan->reserved2 != 0 ||
        (plan->timeout_source_id_count && !plan->timeout_source_ids) || (plan->timeout_ordinal_count && !plan->timeout_ordinals) ||
        (plan->completion_error_ordinal_count && !plan->completion_error_ordinals))
        return -EINVAL;
    uint64_t length = 32 + 4ull * plan->timeout_source_id_count + 8ull * plan->timeout_ordinal_count +
                      8ull * plan->completion_error_ordinal_count;
    int rc;
    uint8_t *p = begin(c, length, &rc);
    if (!p) return rc;
    put64(p, plan->seed);
    put32(p + 8, plan->timeout_per_million);
    put32(p + 12, plan->completion_error_per_million);
    put32(p + 16, plan->timeout_source_id_count);
    put32(p + 20, plan->timeout_ordinal_count);
    put32(p + 24, plan->completion_error_ordinal_count);
    uint8_t *q = p + 32;
    for (uint32_t i = 0; i < plan->timeout_source_id_count; i++, q += 4) put32(q, plan->timeout_source_ids[i]);
    for (uint32_t i = 0; i < plan->timeout_ordinal_count; i++, q += 8) put64(q, plan->timeout_ordinals[i]);
    for (uint32_t i = 0; i < plan->completion_error_ordinal_count; i++, q += 8) put64(q, plan->completion_error_ordinals[i]);
    const uint8_t *r;
    uint32_t n;
    return transact(c, FIC_FAULT_PLAN, unit, (uint32_t)length, NULL, 0, &r, &n);
}

int fic_unit_stats(struct fic_client *c, uint32_t unit, struct fic_unit_stats *out)
{
    if (!c || !out || unit == 0) return -EINVAL;
    int rc;
    if (!begin(c, 0, &rc)) return rc;
    const uint8_t *r;
    uint32_t n;
    rc = transact(c, FIC_STATS, unit, 0, NULL, 0, &r, &n);
    if (rc < 0) return rc;
    if (n < 64) return broken(c, -EPROTO);
    out->iotlb_capacity = get32(r);
    out->iotlb_count = get32(r + 4);
    out->device_tlb_capacity = get32(r + 8);
    out->device_tlb_count = get32(r + 12);
    out->config_capacity = get32(r + 16);
    out->config_count = get32(r + 20);
    out->device_tlb_invalidations = get64(r + 24);
    out->requests = get64(r + 32);
    out->descriptors = get64(r + 40);
    out->fills = get64(r + 48);
    out->memory_bytes = get64(r + 56);
    if (out->iotlb_count > out->iotlb_capacity || out->device_tlb_count > out->device_tlb_capacity ||
        out->config_count > out->config_capacity)
        return broken(c, -EPROTO);
    return 0;
}

int fic_server_stats(struct fic_client *c, struct fic_server_stats *out)
{
    if (!c || !out) return -EINVAL;
    int rc;
    if (!begin(c, 0, &rc)) return rc;
    const uint8_t *r;
    uint32_t n;
    rc = transact(c, FIC_STATS, 0, 0, NULL, 0, &r, &n);
    if (rc < 0) return rc;
    if (n < 32) return broken(c, -EPROTO);
    out->connections = get32(r);
    out->units = get32(r + 4);
    out->frames = get64(r + 8);
    out->error_replies = get64(r + 16);
    if (out->connections == 0) return broken(c, -EPROTO); /* this connection is one */
    return 0;
}

/* ---- registers and iommufd ---- */

int fic_reg_read(struct fic_client *c, uint32_t unit, uint32_t offset, uint8_t size, uint64_t *value)
{
    if (!c || !value) return -EINVAL;
    int rc;
    uint8_t *p = begin(c, 8, &rc);
    if (!p) return rc;
    put32(p, offset);
    p[4] = size;
    const uint8_t *r;
    uint32_t n;
    rc = transact(c, FIC_REG_READ, unit, 8, NULL, 0, &r, &n);
    if (rc < 0) return rc;
    if (n < 8 || (size == 4 && get32(r + 4) != 0)) return broken(c, -EPROTO);
    *value = get64(r);
    return 0;
}

int fic_reg_write(struct fic_client *c, uint32_t unit, uint32_t offset, uint8_t size, uint64_t value, uint32_t *events_sent,
                  uint32_t *events_dropped)
{
    if (!c) return -EINVAL;
    int rc;
    uint8_t *p = begin(c, 16, &rc);
    if (!p) return rc;
    put32(p, offset);
    p[4] = size;
    put64(p + 8, value);
    const uint8_t *r;
    uint32_t n;
    rc = transact(c, FIC_REG_WRITE, unit, 16, NULL, 0, &r, &n);
    if (rc < 0) return rc;
    if (n < 8) return broken(c, -EPROTO);
    uint32_t sent = get32(r), dropped = get32(r + 4);
    /* The reply counts the event frames the server sent before it: exactly those this client received (of the
     * types it knows; at 1.0 there are none to count). */
    if (c->limits.minor >= 1 && sent != c->events_this_request) return broken(c, -EPROTO);
    if (events_sent) *events_sent = sent;
    if (events_dropped) *events_dropped = dropped;
    return 0;
}

int fic_iommufd_ioctl(struct fic_client *c, uint32_t unit, uint32_t request, void *arg, uint32_t arg_length, int32_t *result)
{
    if (!c || !result || (arg_length > 0 && !arg)) return -EINVAL;
    uint64_t payload = 8 + (uint64_t)arg_length;
    if (FIC_HEADER_SIZE + payload > c->max_reply_bytes) return -EMSGSIZE;
    int rc;
    uint8_t *p = begin(c, payload, &rc);
    if (!p) return rc;
    put32(p, request);
    put32(p + 4, arg_length);
    if (arg_length) memcpy(p + 8, arg, arg_length);
    const uint8_t *r;
    uint32_t n;
    rc = transact(c, FIC_IOMMUFD_IOCTL, unit, (uint32_t)payload, NULL, 0, &r, &n);
    if (rc < 0) return rc;
    int32_t res = (int32_t)get32(r);
    if (n < 8 || get32(r + 4) != arg_length || n - 8 < arg_length || res > 0 || res < -4095) return broken(c, -EPROTO);
    if (arg_length) memcpy(arg, r + 8, arg_length);
    *result = res;
    return 0;
}

/* ---- events ---- */

void fic_set_event_handler(struct fic_client *c, fic_event_fn handler, void *user)
{
    if (!c) return;
    c->handler = handler;
    c->handler_user = user;
}

int fic_poll_event(struct fic_client *c, struct fic_event *event)
{
    if (!c || !event) return -EINVAL;
    if (c->queue_count == 0) return 0;
    *event = c->queue[c->queue_head];
    c->queue_head = (c->queue_head + 1) % c->queue_cap;
    c->queue_count--;
    return 1;
}

uint64_t fic_events_dropped(const struct fic_client *c) { return c ? c->dropped : 0; }
uint64_t fic_unknown_events(const struct fic_client *c) { return c ? c->unknown : 0; }

/* ---- raw requests, guest RAM ---- */

int fic_request(struct fic_client *c, uint16_t type, uint32_t unit_id, const void *payload, uint32_t payload_length,
                const int *fds, uint32_t fd_count, void *reply, uint32_t reply_capacity, uint32_t *reply_length)
{
    if (!c || (payload_length > 0 && !payload) || fd_count > FIC_MAX_REGIONS || (fd_count > 0 && !fds) ||
        (reply_capacity > 0 && !reply) || (type & FIC_REPLY_BIT))
        return -EINVAL;
    int rc;
    uint8_t *p = begin(c, payload_length, &rc);
    if (!p) return rc;
    if (payload_length) memcpy(p, payload, payload_length);
    const uint8_t *r;
    uint32_t n;
    rc = transact(c, type, unit_id, payload_length, fds, fd_count, &r, &n);
    if (rc < 0) return rc;
    if (type == FIC_HELLO && !c->negotiated && n >= 8) {
        /* A HELLO sent raw agrees on a version as fic_hello does; remember it (minor decides the 1.1 rules). */
        c->limits.major = get16(r);
        c->limits.minor = get16(r + 2);
        c->limits.max_frame_bytes = n >= 32 ? get32(r + 4) : 0;
        if (c->limits.minor >= 1 && n >= 40) c->limits.max_events_per_request = get32(r + 32);
        c->negotiated = 1;
    }
    if (reply_length) *reply_length = n;
    if (reply) memcpy(reply, r, n < reply_capacity ? n : reply_capacity);
    return 0;
}

int fic_guest_ram_create(const char *name, size_t size, int *fd, void **memory)
{
    if (!name || !fd || !memory || size == 0 || (size & 0xFFF) != 0) return -EINVAL;
    int f = memfd_create(name, MFD_CLOEXEC);
    if (f < 0) return -errno;
    if (ftruncate(f, (off_t)size) < 0) {
        int e = -errno;
        close(f);
        return e;
    }
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, f, 0);
    if (m == MAP_FAILED) {
        int e = -errno;
        close(f);
        return e;
    }
    *fd = f;
    *memory = m;
    return 0;
}
