/* SPDX-License-Identifier: MIT */
/*
 * test_client.c - tests of the C client (fastinval_client.c).
 *
 * Part 1 needs no server: a fake server in this process, the other end of a socketpair, reads the bytes the client
 * sends (compared byte for byte with docs/protocol.md) and writes the replies - right ones, and hostile ones:
 * truncated frames, lengths below the header or past the limit, replies of another type or id, counts that disagree,
 * out-of-range status bytes, misplaced or unknown events, every truncation and single-byte corruption of a reply and
 * random garbage. Every hostile reply must give an error (never a crash, never a wrong answer).
 *
 * Part 2, with --socket PATH, runs against a live `fastinval serve`: every request type, the version rules, typed
 * errors, the limits, events of VT-d and SMMUv3 units, iommufd ioctls, a frame too large.
 *
 * Prints one "ok"/"FAIL" line per check; exits 0 only when every check held.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fastinval_client.h"

static int failures, checks;

static int check(int condition, const char *what)
{
    checks++;
    printf("  %s %s\n", condition ? "ok  " : "FAIL", what);
    if (!condition) failures++;
    return condition;
}

/* ---- byte helpers ---- */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24); }

/* ---- the fake server ---- */

struct fake {
    int peer;               /* the server's end */
    struct fic_client *c;   /* the client under test */
    uint32_t id;            /* the request id the client sends next */
};

static uint8_t frame_buf[1 << 17];

/* Builds a frame in frame_buf; returns its length. */
static size_t frame(uint16_t type, uint16_t status, uint32_t id, uint32_t unit, const uint8_t *payload, size_t n)
{
    put32(frame_buf, (uint32_t)(16 + n));
    put16(frame_buf + 4, type);
    put16(frame_buf + 6, status);
    put32(frame_buf + 8, id);
    put32(frame_buf + 12, unit);
    if (n) memcpy(frame_buf + 16, payload, n);
    return 16 + n;
}

static void peer_write(struct fake *f, const void *data, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t k = write(f->peer, (const uint8_t *)data + done, n - done);
        if (k <= 0) {
            perror("fake server write");
            exit(3);
        }
        done += (size_t)k;
    }
}

/* Queues a reply (or any frame) for the client to read. */
static void serve(struct fake *f, uint16_t type, uint16_t status, uint32_t id, uint32_t unit, const uint8_t *payload, size_t n)
{
    size_t total = frame(type, status, id, unit, payload, n);
    peer_write(f, frame_buf, total);
}

static void reply(struct fake *f, uint16_t request_type, uint32_t unit, const uint8_t *payload, size_t n)
{
    serve(f, (uint16_t)(request_type | FIC_REPLY_BIT), 0, f->id, unit, payload, n);
}

static void error_reply(struct fake *f, uint16_t request_type, uint16_t status, uint32_t unit, uint32_t detail)
{
    uint8_t p[8] = {0};
    put32(p, detail);
    serve(f, (uint16_t)(request_type | FIC_REPLY_BIT), status, f->id, unit, p, 8);
}

/* Takes what the client sent so far (at most cap bytes). */
static size_t sent(struct fake *f, uint8_t *buffer, size_t cap)
{
    size_t got = 0;
    for (;;) {
        ssize_t k = recv(f->peer, buffer + got, cap - got, MSG_DONTWAIT);
        if (k <= 0) break;
        got += (size_t)k;
        if (got == cap) break;
    }
    return got;
}

/* A request header as the client must send it. */
static void header(uint8_t *p, uint32_t length, uint16_t type, uint32_t id, uint32_t unit)
{
    put32(p, length);
    put16(p + 4, type);
    put16(p + 6, 0);
    put32(p + 8, id);
    put32(p + 12, unit);
}

static uint8_t hello_payload(uint8_t *p, uint16_t minor, uint32_t frame_max)
{
    memset(p, 0, 40);
    put16(p, 1);
    put16(p + 2, minor);
    put32(p + 4, frame_max);
    put32(p + 8, 16);
    put32(p + 12, 64);
    put32(p + 16, 64);
    put32(p + 20, 1u << 20);
    put32(p + 24, minor >= 1 ? 1 : 0);
    if (minor >= 1) {
        put32(p + 32, 64);
        put32(p + 36, 8);
    }
    return minor >= 1 ? 40 : 32;
}

/* A client connected to a fake server that answered HELLO (1.1 unless minor says otherwise). */
static int fake_open_with(struct fake *f, uint16_t minor, int32_t timeout_ms, uint32_t queue_capacity)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
    f->peer = sv[1];
    f->c = NULL;
    f->id = 1;
    uint8_t p[40];
    uint8_t n = hello_payload(p, minor, 1u << 20);
    serve(f, FIC_HELLO | FIC_REPLY_BIT, 0, 1, 0, p, n);
    struct fic_options o = {.size = sizeof o, .flags = FIC_CONNECT_MINOR, .minor = minor, .timeout_ms = timeout_ms,
                            .event_queue_capacity = queue_capacity};
    int rc = fic_attach_fd(sv[0], &o, &f->c);
    uint8_t drain[64];
    sent(f, drain, sizeof drain);
    f->id = 2;
    return rc;
}

static int fake_open(struct fake *f) { return fake_open_with(f, 1, 2000, 0); }

static void fake_close(struct fake *f)
{
    fic_close(f->c);
    close(f->peer);
    f->c = NULL;
}

/* A fake whose client holds a unit of @kind (id @unit) through a CREATE the fake answered. */
static int fake_unit(struct fake *f, uint16_t kind, uint32_t unit)
{
    uint8_t p[8] = {0};
    put32(p, unit);
    serve(f, FIC_CREATE | FIC_REPLY_BIT, 0, f->id, unit, p, 8);
    uint32_t u = 0;
    int rc;
    if (kind == FIC_KIND_ENGINE) {
        rc = fic_create_engine(f->c, NULL, &u);
    } else {
        int fd = memfd_create("fake-ram", MFD_CLOEXEC);
        if (ftruncate(fd, 4096) < 0) return -errno;
        struct fic_region r = {0, 4096, 0, fd};
        rc = kind == FIC_KIND_VTD ? fic_create_vtd(f->c, NULL, NULL, &r, 1, &u) : fic_create_smmu(f->c, NULL, NULL, &r, 1, &u);
        close(fd);
    }
    f->id++;
    uint8_t drain[256];
    sent(f, drain, sizeof drain);
    return rc < 0 ? rc : (u == unit ? 0 : -1);
}

/* ---- part 1: against the fake server ---- */

static void test_hello(void)
{
    struct fake f;
    /* The HELLO of 1.0 with request id 1 is the 24 bytes of docs/protocol.md §2. */
    int sv[2];
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    f.peer = sv[1];
    f.id = 1;
    uint8_t p[64];
    serve(&f, FIC_HELLO | FIC_REPLY_BIT, 0, 1, 0, p, hello_payload(p, 0, 1u << 20));
    struct fic_options o = {.size = sizeof o, .flags = FIC_CONNECT_MINOR, .minor = 0};
    int rc = fic_attach_fd(sv[0], &o, &f.c);
    static const uint8_t doc[24] = {0x18, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0};
    uint8_t got[64];
    size_t n = sent(&f, got, sizeof got);
    check(rc == 0 && n == 24 && memcmp(got, doc, 24) == 0, "fake: HELLO 1.0 is byte for byte the protocol document's example");
    const struct fic_limits *l = fic_limits(f.c);
    check(l->major == 1 && l->minor == 0 && l->max_frame_bytes == (1u << 20) && l->max_units_per_connection == 16 &&
              l->max_outstanding_requests == 64 && l->max_connections == 64 && l->max_cache_entries == (1u << 20) &&
              l->server_flags == 0 && l->max_events_per_request == 0 && l->max_fds_per_frame == 0,
          "fake: a 32-byte 1.0 HELLO reply fills the limits, the 1.1 fields stay 0");
    fake_close(&f);

    /* The default offer is 1.1; a 1.1 reply with trailing bytes of a later minor is accepted. */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    f.peer = sv[1];
    uint8_t q[48];
    hello_payload(q, 1, 4096);
    memset(q + 40, 0xEE, 8);
    serve(&f, FIC_HELLO | FIC_REPLY_BIT, 0, 1, 0, q, 48);
    rc = fic_attach_fd(sv[0], NULL, &f.c);
    n = sent(&f, got, sizeof got);
    check(rc == 0 && n == 24 && got[18] == 1 && got[16] == 1, "fake: the default HELLO offers 1.1");
    l = fic_limits(f.c);
    check(rc == 0 && l->minor == 1 && l->max_frame_bytes == 4096 && l->max_events_per_request == 64 && l->max_fds_per_frame == 8 &&
              (l->server_flags & FIC_SERVER_SHARED_MEMORY_UNITS),
          "fake: a 1.1 HELLO reply (with 8 trailing bytes) fills every limit");
    /* A request larger than max_frame_bytes is refused before anything is sent. */
    struct fastinval_descriptor many[200];
    memset(many, 0, sizeof many);
    rc = fic_execute(f.c, 5, many, 200, NULL, NULL);
    check(rc == -EMSGSIZE && sent(&f, got, sizeof got) == 0 && !fic_is_broken(f.c),
          "fake: a request past max_frame_bytes is -EMSGSIZE and nothing is sent");
    fake_close(&f);

    /* Hostile HELLO replies. */
    struct {
        const char *what;
        uint16_t major, minor;
        size_t length;
        int expect;
    } cases[] = {
        {"fake: a HELLO reply with another major is -EPROTO", 2, 1, 40, -EPROTO},
        {"fake: a HELLO reply agreeing on a minor above the offer is -EPROTO", 1, 2, 40, -EPROTO},
        {"fake: a 1.1 HELLO reply of 32 bytes is -EPROTO", 1, 1, 32, -EPROTO},
        {"fake: a HELLO reply of 8 bytes is -EPROTO", 1, 1, 8, -EPROTO},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
        f.peer = sv[1];
        hello_payload(q, 1, 1u << 20);
        put16(q, cases[i].major);
        put16(q + 2, cases[i].minor);
        serve(&f, FIC_HELLO | FIC_REPLY_BIT, 0, 1, 0, q, cases[i].length);
        f.c = NULL;
        rc = fic_attach_fd(sv[0], NULL, &f.c);
        check(rc == cases[i].expect && f.c == NULL, cases[i].what);
        close(f.peer);
    }

    /* Limits no server can have: max_outstanding_requests 0, then max_frame_bytes 16. */
    for (int i = 0; i < 2; i++) {
        socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
        f.peer = sv[1];
        hello_payload(q, 1, i == 0 ? 1u << 20 : 16);
        if (i == 0) put32(q + 12, 0);
        serve(&f, FIC_HELLO | FIC_REPLY_BIT, 0, 1, 0, q, 40);
        f.c = NULL;
        rc = fic_attach_fd(sv[0], NULL, &f.c);
        check(rc == -EPROTO && f.c == NULL, i == 0 ? "fake: a HELLO reply with max_outstanding_requests 0 is -EPROTO"
                                                   : "fake: a HELLO reply with max_frame_bytes 16 is -EPROTO");
        close(f.peer);
    }

    /* VERSION, and a CONNECTION_LIMIT FRAME_ERROR sent unasked. */
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    f.peer = sv[1];
    uint8_t e[8] = {2, 0, 0, 0, 0, 0, 0, 0};
    serve(&f, FIC_HELLO | FIC_REPLY_BIT, FIC_STATUS_VERSION, 1, 0, e, 8);
    o.flags = FIC_CONNECT_NO_HELLO;
    fic_attach_fd(sv[0], &o, &f.c);
    struct fic_limits lim;
    rc = fic_hello(f.c, 1, 1, &lim);
    struct fic_error err;
    fic_last_error(f.c, &err);
    check(rc == FIC_E_VERSION && err.detail == 2 && err.status == FIC_STATUS_VERSION && err.request_type == FIC_HELLO &&
              !fic_is_broken(f.c),
          "fake: VERSION is a typed error with the server's major as detail, the connection kept");
    fake_close(&f);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    f.peer = sv[1];
    e[0] = 64;
    serve(&f, FIC_FRAME_ERROR, FIC_STATUS_CONNECTION_LIMIT, 0, 0, e, 8);
    f.c = NULL;
    rc = fic_attach_fd(sv[0], NULL, &f.c);
    check(rc == FIC_E_CONNECTION_LIMIT && f.c == NULL, "fake: a CONNECTION_LIMIT FRAME_ERROR fails the connect");
    close(f.peer);

    /* Bad options. */
    o.size = 3;
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    rc = fic_attach_fd(sv[0], &o, &f.c);
    check(rc == -EINVAL, "fake: options of a wrong size are -EINVAL");
    close(sv[1]);
    o.size = sizeof o;
    o.flags = FIC_CONNECT_MINOR;
    o.minor = 2;
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    rc = fic_attach_fd(sv[0], &o, &f.c);
    check(rc == -EINVAL, "fake: offering a minor this client does not speak is -EINVAL");
    close(sv[1]);
    check(fic_connect("/nonexistent/dir/fastinval.sock", NULL, &f.c) == -ENOENT, "fic_connect to a missing socket is -ENOENT");
    check(fic_connect(NULL, NULL, &f.c) == -EINVAL, "fic_connect(NULL) is -EINVAL");
}

static void test_create(void)
{
    struct fake f;
    uint8_t got[512], want[512];
    fake_open(&f);
    uint8_t p[8] = {0};
    put32(p, 7);
    reply(&f, FIC_CREATE, 7, p, 8);
    uint32_t unit = 0;
    struct fic_capacities caps = {4096, 1024, 256};
    int rc = fic_create_engine(f.c, &caps, &unit);
    size_t n = sent(&f, got, sizeof got);
    memset(want, 0, 40);
    header(want, 40, FIC_CREATE, 2, 0);
    put16(want + 16, 1);
    put32(want + 24, 4096);
    put32(want + 28, 1024);
    put32(want + 32, 256);
    check(rc == 0 && unit == 7 && n == 40 && memcmp(got, want, 40) == 0 && fic_unit_kind(f.c, 7) == FIC_KIND_ENGINE,
          "fake: CREATE ENGINE bytes (kind, capacities) and its reply");
    f.id++;
    /* The same id again: the server never reuses ids. */
    reply(&f, FIC_CREATE, 7, p, 8);
    rc = fic_create_engine(f.c, NULL, &unit);
    check(rc == -EPROTO && fic_is_broken(f.c), "fake: a CREATE reply with an id the connection already holds is -EPROTO");
    check(fic_destroy(f.c, 7) == -ENOTCONN, "fake: a broken connection answers -ENOTCONN without sending");
    fake_close(&f);

    fake_open(&f);
    reply(&f, FIC_CREATE, 0, (uint8_t[8]){0}, 8);
    check(fic_create_engine(f.c, NULL, &unit) == -EPROTO, "fake: a CREATE reply with unit id 0 is -EPROTO");
    fake_close(&f);
    fake_open(&f);
    put32(p, 9);
    reply(&f, FIC_CREATE, 8, p, 8);
    check(fic_create_engine(f.c, NULL, &unit) == -EPROTO, "fake: a CREATE reply whose header and payload ids differ is -EPROTO");
    fake_close(&f);

    /* VT-d CREATE: the options, the regions and the descriptor passed with the frame's first byte. */
    fake_open(&f);
    int fd = memfd_create("fake-vtd", MFD_CLOEXEC);
    check(ftruncate(fd, 0x10000) == 0, "fake: a memfd for the regions");
    put32(p, 11);
    reply(&f, FIC_CREATE, 11, p, 8);
    struct fic_region regions[2] = {{0x80000000, 0x8000, 0, fd}, {0x90000000, 0x8000, 0x8000, fd}};
    struct fic_unit_options uo = {.feature_flags = FIC_VTD_CACHING_MODE | FIC_VTD_PARAMS, .params = {39, 9, 3, 0}};
    rc = fic_create_vtd(f.c, NULL, &uo, regions, 2, &unit);
    union {
        struct cmsghdr align;
        char bytes[CMSG_SPACE(sizeof(int) * 8)];
    } control;
    struct iovec iov = {.iov_base = got, .iov_len = sizeof got};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes, .msg_controllen = sizeof control.bytes};
    ssize_t k = recvmsg(f.peer, &msg, MSG_DONTWAIT);
    int fds[8], nfds = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
            nfds = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            memcpy(fds, CMSG_DATA(cm), sizeof(int) * (size_t)nfds);
        }
    memset(want, 0, 24 + 16 + 48 + 16);
    header(want, 16 + 24 + 16 + 48, FIC_CREATE, f.id, 0);
    put16(want + 16, 3);
    put32(want + 20, 2);
    put32(want + 36, 16 + 48);
    put32(want + 40, 2);
    put32(want + 44, 0x300);
    want[48] = 39;
    want[49] = 9;
    want[50] = 3;
    put64(want + 56, 0x80000000);
    put64(want + 64, 0x8000);
    put64(want + 72, 0);
    put64(want + 80, 0x90000000);
    put64(want + 88, 0x8000);
    put64(want + 96, 0x8000);
    check(rc == 0 && unit == 11 && k == 104 && memcmp(got, want, 104) == 0, "fake: CREATE VTD bytes: fd_count, options, regions");
    struct stat a, b;
    fstat(fd, &a);
    int same = nfds == 2;
    for (int i = 0; i < nfds; i++) {
        fstat(fds[i], &b);
        same &= a.st_ino == b.st_ino && a.st_dev == b.st_dev;
        close(fds[i]);
    }
    check(same, "fake: the two region descriptors arrive as SCM_RIGHTS with the frame's first byte");
    check(fic_unit_kind(f.c, 11) == FIC_KIND_VTD, "fake: the client knows unit 11 is a VT-d unit");
    f.id++;
    struct fic_region bad = {0, 4096, 0, -1};
    check(fic_create_smmu(f.c, NULL, NULL, &bad, 1, &unit) == -EINVAL, "fake: a region without a descriptor is -EINVAL");
    struct fic_region nine[9];
    for (int i = 0; i < 9; i++) nine[i] = regions[0];
    check(fic_create_smmu(f.c, NULL, NULL, nine, 9, &unit) == -EINVAL && sent(&f, got, sizeof got) == 0,
          "fake: nine regions are -EINVAL, nothing sent");
    /* DESTROY forgets the unit. */
    reply(&f, FIC_DESTROY, 11, NULL, 0);
    rc = fic_destroy(f.c, 11);
    n = sent(&f, got, sizeof got);
    header(want, 16, FIC_DESTROY, f.id, 11);
    check(rc == 0 && n == 16 && memcmp(got, want, 16) == 0 && fic_unit_kind(f.c, 11) == 0, "fake: DESTROY bytes; the unit is forgotten");
    f.id++;

    /* iommufd CREATE: devices, the user addresses and device ids of the reply. */
    put32(p, 12);
    uint8_t r[8 + 8 + 8];
    memset(r, 0, sizeof r);
    put32(r, 12);
    put64(r + 8, 0x10000);
    put32(r + 16, 1);
    put32(r + 20, 2);
    reply(&f, FIC_CREATE, 12, r, sizeof r);
    struct fic_iommufd_options io = {.flags = FIC_IOMMUFD_SELFTEST, .engine_kind = FIC_IOMMUFD_ENGINE_SMMUV3};
    struct fic_iommufd_device dev[2] = {{FIC_IOMMUFD_ENGINE_VTD, FIC_IOMMUFD_DEVICE_ATS, 0x100}, {FIC_IOMMUFD_ENGINE_SMMUV3, 0, 0x7}};
    struct fic_region ur = {0, 0x4000, 0, fd};
    struct fic_iommufd_unit out;
    rc = fic_create_iommufd(f.c, NULL, &io, &ur, 1, dev, 2, &out);
    k = recvmsg(f.peer, &msg, MSG_DONTWAIT);
    memset(want, 0, 128);
    header(want, 16 + 24 + 16 + 24 + 16, FIC_CREATE, f.id, 0);
    put16(want + 16, 2);
    put32(want + 20, 1);
    put32(want + 36, 16 + 24 + 16);
    put32(want + 40, 1);
    put32(want + 44, 1);
    put32(want + 48, 2);
    want[52] = 2;
    put64(want + 64, 0x4000);
    want[80] = 1;
    want[81] = 1;
    put32(want + 84, 0x100);
    want[88] = 2;
    put32(want + 92, 7);
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_type == SCM_RIGHTS) close(*(int *)CMSG_DATA(cm));
    check(rc == 0 && k == 96 && memcmp(got, want, 96) == 0, "fake: CREATE IOMMUFD bytes: flags, devices, engine kind, region");
    check(out.unit == 12 && out.user_address[0] == 0x10000 && out.device_id[0] == 1 && out.device_id[1] == 2 &&
              fic_unit_kind(f.c, 12) == FIC_KIND_IOMMUFD,
          "fake: the IOMMUFD reply's user address and device ids");
    f.id++;
    put64(r + 8, 0x10800); /* not 4 KiB aligned */
    put32(r, 13);
    reply(&f, FIC_CREATE, 13, r, sizeof r);
    check(fic_create_iommufd(f.c, NULL, &io, &ur, 1, dev, 2, &out) == -EPROTO, "fake: an unaligned user address is -EPROTO");
    fake_close(&f);
    /* Two regions whose user addresses overlap (the second inside the first's range and guard page). */
    fake_open(&f);
    uint8_t r2[8 + 16];
    memset(r2, 0, sizeof r2);
    put32(r2, 14);
    put64(r2 + 8, 0x10000);
    put64(r2 + 16, 0x13000);
    reply(&f, FIC_CREATE, 14, r2, sizeof r2);
    struct fic_region two[2] = {ur, ur};
    check(fic_create_iommufd(f.c, NULL, &io, two, 2, NULL, 0, &out) == -EPROTO,
          "fake: user addresses that overlap an earlier region (or its guard page) are -EPROTO");
    close(fd);
    fake_close(&f);
}

static void test_caches(void)
{
    struct fake f;
    uint8_t got[1024], want[1024], r[256];
    fake_open(&f);
    fake_unit(&f, FIC_KIND_ENGINE, 5);

    /* FILL of each cache, byte for byte. */
    struct fastinval_iotlb_entry e = {.input_address = 0x1122334455667000, .output_address = 0x8000, .address_space_id = 0xABCDE,
                                      .domain_id = 0x1234, .rights = 0x0F3, .stage = 4, .granule = 2, .size_log2 = 14, .flags = 3};
    memset(r, 0, 16);
    put32(r, 1);
    r[8] = FASTINVAL_FILL_REPLACED;
    reply(&f, FIC_FILL, 5, r, 9);
    uint8_t results[4] = {9, 9, 9, 9};
    int rc = fic_fill_iotlb(f.c, 5, &e, 1, results);
    size_t n = sent(&f, got, sizeof got);
    memset(want, 0, 56);
    header(want, 56, FIC_FILL, f.id, 5);
    put16(want + 16, 1);
    put32(want + 20, 1);
    put64(want + 24, 0x1122334455667000);
    put64(want + 32, 0x8000);
    put32(want + 40, 0xABCDE);
    put16(want + 44, 0x1234);
    put16(want + 46, 0x0F3);
    want[48] = 4;
    want[49] = 2;
    want[50] = 14;
    want[51] = 3;
    check(rc == 1 && results[0] == FASTINVAL_FILL_REPLACED && n == 56 && memcmp(got, want, 56) == 0,
          "fake: FILL IOTLB bytes (struct fastinval_iotlb_entry) and the result byte");
    f.id++;
    struct fastinval_devtlb_entry d = {.input_address = 0x5000, .output_address = 0x9000, .source_id = 0x0300, .pasid = 0x77,
                                       .rights = 1, .size_log2 = 13, .flags = 1};
    r[8] = FASTINVAL_FILL_REJECTED;
    reply(&f, FIC_FILL, 5, r, 9);
    rc = fic_fill_device_tlb(f.c, 5, &d, 1, results);
    n = sent(&f, got, sizeof got);
    memset(want, 0, 56);
    header(want, 56, FIC_FILL, f.id, 5);
    put16(want + 16, 2);
    put32(want + 20, 1);
    put64(want + 24, 0x5000);
    put64(want + 32, 0x9000);
    put32(want + 40, 0x300);
    put32(want + 44, 0x77);
    put16(want + 48, 1);
    want[50] = 13;
    want[51] = 1;
    check(rc == 0 && results[0] == FASTINVAL_FILL_REJECTED && n == 56 && memcmp(got, want, 56) == 0,
          "fake: FILL DEVICE_TLB bytes; a REJECTED result counts as not accepted");
    f.id++;
    struct fastinval_config_entry ce = {.value = 0xFEDCBA9876543210, .source_id = 0x10, .address_space_id = 0xFFFFFFFF,
                                        .domain_id = 9, .kind = FASTINVAL_CONFIG_STE};
    r[8] = 0;
    reply(&f, FIC_FILL, 5, r, 9);
    rc = fic_fill_config(f.c, 5, &ce, 1, NULL);
    n = sent(&f, got, sizeof got);
    memset(want, 0, 56);
    header(want, 56, FIC_FILL, f.id, 5);
    put16(want + 16, 3);
    put32(want + 20, 1);
    put64(want + 24, 0xFEDCBA9876543210);
    put32(want + 32, 0x10);
    put32(want + 36, 0xFFFFFFFF);
    put16(want + 40, 9);
    want[42] = 4;
    check(rc == 1 && n == 56 && memcmp(got, want, 56) == 0, "fake: FILL CONFIG bytes (24-byte struct, 32 on the wire)");
    f.id++;
    /* Hostile FILL replies. */
    put32(r, 2);
    reply(&f, FIC_FILL, 5, r, 10);
    check(fic_fill_iotlb(f.c, 5, &e, 1, NULL) == -EPROTO, "fake: a FILL reply with another count is -EPROTO");
    fake_close(&f);
    fake_open(&f);
    fake_unit(&f, FIC_KIND_ENGINE, 5);
    put32(r, 1);
    r[8] = 4;
    reply(&f, FIC_FILL, 5, r, 9);
    check(fic_fill_iotlb(f.c, 5, &e, 1, NULL) == -EPROTO, "fake: a FILL result byte 4 is -EPROTO");
    fake_close(&f);
    fake_open(&f);
    fake_unit(&f, FIC_KIND_ENGINE, 5);
    reply(&f, FIC_FILL, 5, r, 8);
    check(fic_fill_iotlb(f.c, 5, &e, 1, NULL) == -EPROTO, "fake: a FILL reply without its result bytes is -EPROTO");
    fake_close(&f);

    /* LOOKUP of each cache. */
    fake_open(&f);
    fake_unit(&f, FIC_KIND_ENGINE, 5);
    struct fic_iotlb_query q[2] = {{0x4000123, 0xFFFFFFFF, 7, 2, 0}, {0x8000, 3, 1, 1, 21}};
    memset(r, 0, 8 + 64);
    put32(r, 2);
    put32(r + 4, 1);
    r[8] = 1;
    r[9] = 12;
    r[10] = 1;
    put16(r + 12, 3);
    put64(r + 16, 0x1234123);
    put64(r + 24, 0x4000000);
    reply(&f, FIC_LOOKUP, 5, r, 72);
    struct fic_lookup_result lr[2];
    rc = fic_lookup_iotlb(f.c, 5, q, 2, lr);
    n = sent(&f, got, sizeof got);
    memset(want, 0, 88);
    header(want, 88, FIC_LOOKUP, f.id, 5);
    put16(want + 16, 1);
    put32(want + 20, 2);
    put64(want + 24, 0x4000123);
    put32(want + 32, 0xFFFFFFFF);
    put16(want + 36, 7);
    want[38] = 2;
    put64(want + 56, 0x8000);
    put32(want + 64, 3);
    put16(want + 68, 1);
    want[70] = 1;
    want[71] = 21;
    check(rc == 1 && n == 88 && memcmp(got, want, 88) == 0, "fake: LOOKUP IOTLB bytes (address, ASID, DID, stage, table span)");
    check(lr[0].hit == 1 && lr[0].size_log2 == 12 && lr[0].global == 1 && lr[0].rights == 3 && lr[0].output == 0x1234123 &&
              lr[0].input_base == 0x4000000 && lr[1].hit == 0 && lr[1].output == 0,
          "fake: LOOKUP results decoded (a hit and a miss)");
    f.id++;
    struct fic_devtlb_query dq = {0x5000, 0x300, 0x77};
    memset(r, 0, 40);
    put32(r, 1);
    reply(&f, FIC_LOOKUP, 5, r, 40);
    rc = fic_lookup_device_tlb(f.c, 5, &dq, 1, lr);
    n = sent(&f, got, sizeof got);
    memset(want, 0, 56);
    header(want, 56, FIC_LOOKUP, f.id, 5);
    put16(want + 16, 2);
    put32(want + 20, 1);
    put64(want + 24, 0x5000);
    put32(want + 32, 0x300);
    put32(want + 36, 0x77);
    check(rc == 0 && n == 56 && memcmp(got, want, 56) == 0 && lr[0].hit == 0, "fake: LOOKUP DEVICE_TLB bytes, a miss");
    f.id++;
    struct fic_config_query cq = {FASTINVAL_CONFIG_CD, 0x10, 4};
    memset(r, 0, 40);
    put32(r, 1);
    put32(r + 4, 1);
    r[8] = 1;
    r[11] = 8;
    put16(r + 14, 9);
    put64(r + 16, 0xFEDC);
    put32(r + 32, 0x10);
    put32(r + 36, 4);
    reply(&f, FIC_LOOKUP, 5, r, 40);
    rc = fic_lookup_config(f.c, 5, &cq, 1, lr);
    n = sent(&f, got, sizeof got);
    memset(want, 0, 56);
    header(want, 56, FIC_LOOKUP, f.id, 5);
    put16(want + 16, 3);
    put32(want + 20, 1);
    want[24] = 8;
    put32(want + 28, 0x10);
    put32(want + 32, 4);
    check(rc == 1 && n == 56 && memcmp(got, want, 56) == 0 && lr[0].kind == 8 && lr[0].domain_id == 9 && lr[0].output == 0xFEDC &&
              lr[0].source_id == 0x10 && lr[0].address_space_id == 4,
          "fake: LOOKUP CONFIG bytes and a config hit decoded");
    f.id++;
    /* Hostile LOOKUP replies: hits disagreeing with the results, a miss with bytes set, a hit byte of 2, short. */
    struct {
        const char *what;
        int at;
        uint8_t value;
        size_t length;
    } bad[] = {
        {"fake: a LOOKUP reply counting a hit it does not hold is -EPROTO", 4, 1, 40},
        {"fake: a LOOKUP miss with a non-zero byte is -EPROTO", 16, 1, 40},
        {"fake: a LOOKUP hit byte of 2 is -EPROTO", 8, 2, 40},
        {"fake: a LOOKUP reply shorter than its count says is -EPROTO", 0, 1, 39},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(r, 0, 40);
        put32(r, 1);
        r[bad[i].at] = bad[i].value;
        reply(&f, FIC_LOOKUP, 5, r, bad[i].length);
        check(fic_lookup_device_tlb(f.c, 5, &dq, 1, lr) == -EPROTO, bad[i].what);
        fake_close(&f);
        fake_open(&f);
        fake_unit(&f, FIC_KIND_ENGINE, 5);
    }
    check(fic_lookup_iotlb(f.c, 5, q, 2, NULL) == -EINVAL && sent(&f, got, sizeof got) == 0,
          "fake: a LOOKUP without a results array is -EINVAL, nothing sent");
    fake_close(&f);
}

static void test_execute_and_plan(void)
{
    struct fake f;
    uint8_t got[1024], want[1024], r[64];
    fake_open(&f);
    fake_unit(&f, FIC_KIND_ENGINE, 5);
    struct fastinval_descriptor d[2] = {
        {.scope = 2, .flags = 0x1F, .stages = 7, .level_hint = 3, .granule_hint = 1, .config_kinds = 0x1F, .domain_id = 0xBEEF,
         .address_space_id = 0xCAFE, .source_id = 0x1234, .first = 0x1000, .last = 0x1FFFFFFFFF},
        {.scope = 3, .address_space_id = 0xFFFFFFFF, .source_id = 0x200, .last = UINT64_MAX},
    };
    memset(r, 0, 26);
    put32(r, 1);
    put32(r + 4, 1);
    put32(r + 16, 1);
    put32(r + 20, 2);
    r[24] = 0;
    r[25] = 1;
    reply(&f, FIC_EXECUTE, 5, r, 26);
    uint8_t st[2];
    struct fic_execute_result x;
    int rc = fic_execute(f.c, 5, d, 2, st, &x);
    size_t n = sent(&f, got, sizeof got);
    memset(want, 0, 88);
    header(want, 88, FIC_EXECUTE, f.id, 5);
    put32(want + 16, 2);
    uint8_t *e = want + 24;
    e[0] = 2, e[1] = 0x1F, e[2] = 7, e[3] = 3, e[4] = 1, e[5] = 0x1F;
    put16(e + 6, 0xBEEF);
    put32(e + 8, 0xCAFE);
    put32(e + 12, 0x1234);
    put64(e + 16, 0x1000);
    put64(e + 24, 0x1FFFFFFFFF);
    e += 32;
    e[0] = 3;
    put32(e + 8, 0xFFFFFFFF);
    put32(e + 12, 0x200);
    put64(e + 24, UINT64_MAX);
    check(rc == 0 && n == 88 && memcmp(got, want, 88) == 0, "fake: EXECUTE bytes (struct fastinval_descriptor, every field)");
    check(x.ok == 1 && x.timed_out == 1 && x.first_failure_index == 1 && st[0] == 0 && st[1] == 1, "fake: EXECUTE reply decoded");
    f.id++;
    struct {
        const char *what;
        int at;
        uint32_t value;
    } bad[] = {
        {"fake: EXECUTE counts that disagree with the statuses are -EPROTO", 0, 2},
        {"fake: an EXECUTE first_failure_index that is not the first failure is -EPROTO", 16, 0},
        {"fake: an EXECUTE status byte of 4 is -EPROTO", 25, 4},
        {"fake: an EXECUTE reply of another count is -EPROTO", 20, 3},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(r, 0, 26);
        put32(r, 1);
        put32(r + 4, 1);
        put32(r + 16, 1);
        put32(r + 20, 2);
        r[25] = 1;
        if (bad[i].at == 25) r[25] = (uint8_t)bad[i].value;
        else put32(r + bad[i].at, bad[i].value);
        reply(&f, FIC_EXECUTE, 5, r, 26);
        check(fic_execute(f.c, 5, d, 2, st, &x) == -EPROTO, bad[i].what);
        fake_close(&f);
        fake_open(&f);
        fake_unit(&f, FIC_KIND_ENGINE, 5);
    }

    /* FAULT_PLAN: counts, then the arrays in order. */
    static const uint32_t sources[] = {0x42, 0x43};
    static const uint64_t timeouts[] = {7};
    static const uint64_t errors[] = {9, 10};
    struct fastinval_fault_plan plan = {.size = sizeof plan, .seed = 0x1122334455667788, .timeout_per_million = 1000,
                                        .completion_error_per_million = 5, .timeout_source_ids = sources, .timeout_ordinals = timeouts,
                                        .completion_error_ordinals = errors, .timeout_source_id_count = 2, .timeout_ordinal_count = 1,
                                        .completion_error_ordinal_count = 2};
    reply(&f, FIC_FAULT_PLAN, 5, NULL, 0);
    rc = fic_set_fault_plan(f.c, 5, &plan);
    n = sent(&f, got, sizeof got);
    memset(want, 0, 16 + 32 + 8 + 24);
    header(want, 16 + 32 + 8 + 24, FIC_FAULT_PLAN, f.id, 5);
    put64(want + 16, 0x1122334455667788);
    put32(want + 24, 1000);
    put32(want + 28, 5);
    put32(want + 32, 2);
    put32(want + 36, 1);
    put32(want + 40, 2);
    put32(want + 48, 0x42);
    put32(want + 52, 0x43);
    put64(want + 56, 7);
    put64(want + 64, 9);
    put64(want + 72, 10);
    check(rc == 0 && n == 80 && memcmp(got, want, 80) == 0, "fake: FAULT_PLAN bytes (struct fastinval_fault_plan)");
    f.id++;
    plan.size = 8;
    check(fic_set_fault_plan(f.c, 5, &plan) == -EINVAL && sent(&f, got, sizeof got) == 0, "fake: a fault plan of a wrong size is -EINVAL");
    plan.size = sizeof plan;
    plan.timeout_source_ids = NULL;
    check(fic_set_fault_plan(f.c, 5, &plan) == -EINVAL, "fake: a fault plan counting a NULL array is -EINVAL");
    reply(&f, FIC_FAULT_PLAN, 5, NULL, 0);
    rc = fic_set_fault_plan(f.c, 5, NULL);
    n = sent(&f, got, sizeof got);
    memset(want, 0, 48);
    header(want, 48, FIC_FAULT_PLAN, f.id, 5);
    check(rc == 0 && n == 48 && memcmp(got, want, 48) == 0, "fake: a NULL fault plan sends the empty plan");
    f.id++;

    /* STATS of a unit and of the server. */
    uint8_t s[64];
    for (int i = 0; i < 64; i++) s[i] = 0;
    put32(s, 100);
    put32(s + 4, 3);
    put32(s + 8, 50);
    put32(s + 16, 10);
    put64(s + 24, 4);
    put64(s + 32, 12);
    put64(s + 40, 99);
    put64(s + 48, 7);
    put64(s + 56, 123456);
    reply(&f, FIC_STATS, 5, s, 64);
    struct fic_unit_stats us;
    rc = fic_unit_stats(f.c, 5, &us);
    n = sent(&f, got, sizeof got);
    header(want, 16, FIC_STATS, f.id, 5);
    check(rc == 0 && n == 16 && memcmp(got, want, 16) == 0 && us.iotlb_capacity == 100 && us.iotlb_count == 3 &&
              us.device_tlb_invalidations == 4 && us.requests == 12 && us.descriptors == 99 && us.fills == 7 && us.memory_bytes == 123456,
          "fake: STATS of a unit: bytes and every figure");
    f.id++;
    reply(&f, FIC_STATS, 5, s, 63);
    check(fic_unit_stats(f.c, 5, &us) == -EPROTO, "fake: a 63-byte unit STATS reply is -EPROTO");
    fake_close(&f);
    fake_open(&f);
    fake_unit(&f, FIC_KIND_ENGINE, 5);
    put32(s + 4, 101); /* more entries than capacity */
    reply(&f, FIC_STATS, 5, s, 64);
    check(fic_unit_stats(f.c, 5, &us) == -EPROTO, "fake: a unit with more entries than its capacity is -EPROTO");
    fake_close(&f);
    fake_open(&f);
    memset(s, 0, 32);
    put32(s, 3);
    put32(s + 4, 2);
    put64(s + 8, 1000);
    put64(s + 16, 5);
    reply(&f, FIC_STATS, 0, s, 32);
    struct fic_server_stats ss;
    rc = fic_server_stats(f.c, &ss);
    n = sent(&f, got, sizeof got);
    header(want, 16, FIC_STATS, f.id, 0);
    check(rc == 0 && n == 16 && memcmp(got, want, 16) == 0 && ss.connections == 3 && ss.units == 2 && ss.frames == 1000 &&
              ss.error_replies == 5,
          "fake: STATS of the server (unit 0)");
    f.id++;
    reply(&f, FIC_STATS, 0, s, 31);
    check(fic_server_stats(f.c, &ss) == -EPROTO, "fake: a 31-byte server STATS reply is -EPROTO");
    fake_close(&f);
}

/* Events seen by the handler. */
static struct fic_event seen[8];
static int seen_count;
static struct fic_client *reentrant_client;
static int reentrant_rc;

static void keep(void *user, const struct fic_event *e)
{
    (void)user;
    if (seen_count < 8) seen[seen_count] = *e;
    seen_count++;
    if (reentrant_client) {
        uint64_t v;
        reentrant_rc = fic_reg_read(reentrant_client, e->unit, 0, 4, &v);
    }
}

static void event_frame(struct fake *f, uint16_t type, uint32_t unit, uint32_t id, uint8_t delivery, uint64_t address, uint32_t data,
                        uint32_t a, uint32_t b, uint64_t c, size_t length)
{
    uint8_t p[64];
    memset(p, 0, sizeof p);
    put64(p, address);
    put32(p + 8, data);
    p[12] = delivery;
    put32(p + 16, a);
    put32(p + 20, b);
    put64(p + 24, c);
    serve(f, type, 0, id, unit, p, length);
}

static void write_reply(struct fake *f, uint32_t unit, uint32_t events, uint32_t dropped)
{
    uint8_t p[8];
    put32(p, events);
    put32(p + 4, dropped);
    reply(f, FIC_REG_WRITE, unit, p, 8);
}

static void test_registers_and_events(void)
{
    struct fake f;
    uint8_t got[256], want[256], r[64];
    fake_open(&f);
    fake_unit(&f, FIC_KIND_VTD, 3);
    put64(r, 0x60);
    reply(&f, FIC_REG_READ, 3, r, 8);
    uint64_t v = 0;
    int rc = fic_reg_read(f.c, 3, 0, 4, &v);
    size_t n = sent(&f, got, sizeof got);
    memset(want, 0, 24);
    header(want, 24, FIC_REG_READ, f.id, 3);
    want[20] = 4;
    check(rc == 0 && v == 0x60 && n == 24 && memcmp(got, want, 24) == 0, "fake: REG_READ bytes (offset, size) and the value");
    f.id++;
    put64(r, 0x100000060ull);
    reply(&f, FIC_REG_READ, 3, r, 8);
    check(fic_reg_read(f.c, 3, 0, 4, &v) == -EPROTO, "fake: a 4-byte REG_READ answered with 33 bits is -EPROTO");
    fake_close(&f);

    /* REG_WRITE with two events before its reply, to the handler, in order. */
    fake_open(&f);
    fake_unit(&f, FIC_KIND_VTD, 3);
    fic_set_event_handler(f.c, keep, NULL);
    seen_count = 0;
    event_frame(&f, FIC_EVENT_VTD_FAULT, 3, 0, 1, 0xFEE01000, 0x77, 0x50, 0, 0x3, 32);
    event_frame(&f, FIC_EVENT_DEVICE_TLB_TIMEOUT, 3, 0, 0, 0, 0, 0x42, 0, 0, 32);
    write_reply(&f, 3, 2, 0);
    uint32_t ev = 9, dropped = 9;
    rc = fic_reg_write(f.c, 3, 0x88, 8, 0x20, &ev, &dropped);
    n = sent(&f, got, sizeof got);
    memset(want, 0, 32);
    header(want, 32, FIC_REG_WRITE, f.id, 3);
    put32(want + 16, 0x88);
    want[20] = 8;
    put64(want + 24, 0x20);
    check(rc == 0 && n == 32 && memcmp(got, want, 32) == 0 && ev == 2 && dropped == 0, "fake: REG_WRITE bytes and its counts");
    check(seen_count == 2 && seen[0].type == FIC_EVENT_VTD_FAULT && seen[0].unit == 3 && seen[0].address == 0xFEE01000 &&
              seen[0].data == 0x77 && seen[0].delivery == 1 && seen[0].a == 0x50 && seen[0].c == 3 &&
              seen[1].type == FIC_EVENT_DEVICE_TLB_TIMEOUT && seen[1].a == 0x42,
          "fake: both events reach the handler in order, every field decoded");
    f.id++;
    /* An unknown event type is skipped by its length (any length), and counted. */
    seen_count = 0;
    uint8_t odd[5] = {1, 2, 3, 4, 5};
    serve(&f, 0x4100, 0, 0, 3, odd, 5);
    serve(&f, 0x7FFE, 7, 99, 12345, NULL, 0);
    event_frame(&f, FIC_EVENT_VTD_COMPLETION, 3, 0, 1, 0xFEE00000, 0x55, 1, 0, 0, 40); /* 8 trailing bytes: ignored */
    write_reply(&f, 3, 1, 0);
    rc = fic_reg_write(f.c, 3, 0x88, 8, 0x30, &ev, NULL);
    check(rc == 0 && seen_count == 1 && seen[0].type == FIC_EVENT_VTD_COMPLETION && fic_unknown_events(f.c) == 2,
          "fake: unknown event types are skipped and counted; a longer known event is accepted");
    f.id++;
    /* The reply must count exactly the events received. */
    event_frame(&f, FIC_EVENT_VTD_COMPLETION, 3, 0, 1, 0xFEE00000, 0x55, 1, 0, 0, 32);
    write_reply(&f, 3, 2, 0);
    check(fic_reg_write(f.c, 3, 0x88, 8, 0x40, NULL, NULL) == -EPROTO, "fake: a REG_WRITE reply counting events it did not send is -EPROTO");
    fake_close(&f);

    /* Misplaced and malformed events. */
    struct {
        const char *what;
        uint16_t type;
        uint32_t unit, id;
        uint8_t delivery;
        uint64_t address;
        size_t length;
        int unit_kind;
        uint16_t request;
    } bad[] = {
        {"fake: an event of another of our units is -EPROTO", FIC_EVENT_VTD_FAULT, 4, 0, 1, 1, 32, FIC_KIND_VTD, FIC_REG_WRITE},
        {"fake: an event with a request id is -EPROTO", FIC_EVENT_VTD_FAULT, 3, 5, 1, 1, 32, FIC_KIND_VTD, FIC_REG_WRITE},
        {"fake: an event of 31 payload bytes is -EPROTO", FIC_EVENT_VTD_FAULT, 3, 0, 1, 1, 31, FIC_KIND_VTD, FIC_REG_WRITE},
        {"fake: a VT-d event from an SMMUv3 unit is -EPROTO", FIC_EVENT_VTD_COMPLETION, 3, 0, 1, 1, 32, FIC_KIND_SMMUV3, FIC_REG_WRITE},
        {"fake: an SMMU event from a VT-d unit is -EPROTO", FIC_EVENT_SMMU_CMD_SYNC, 3, 0, 1, 1, 32, FIC_KIND_VTD, FIC_REG_WRITE},
        {"fake: a VT-d event that is not an MSI is -EPROTO", FIC_EVENT_VTD_FAULT, 3, 0, 2, 0, 32, FIC_KIND_VTD, FIC_REG_WRITE},
        {"fake: a wired GERROR event with an MSI address is -EPROTO", FIC_EVENT_SMMU_GERROR, 3, 0, 2, 0x1000, 32, FIC_KIND_SMMUV3, FIC_REG_WRITE},
        {"fake: a GERROR event with delivery 3 is -EPROTO", FIC_EVENT_SMMU_GERROR, 3, 0, 3, 0, 32, FIC_KIND_SMMUV3, FIC_REG_WRITE},
        {"fake: a time-out event with a delivery is -EPROTO", FIC_EVENT_DEVICE_TLB_TIMEOUT, 3, 0, 1, 0, 32, FIC_KIND_SMMUV3, FIC_REG_WRITE},
        {"fake: an event during a REG_READ is -EPROTO", FIC_EVENT_VTD_FAULT, 3, 0, 1, 1, 32, FIC_KIND_VTD, FIC_REG_READ},
        {"fake: an event of an engine unit is -EPROTO", FIC_EVENT_DEVICE_TLB_TIMEOUT, 3, 0, 0, 0, 32, FIC_KIND_ENGINE, FIC_REG_WRITE},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fake_open(&f);
        fake_unit(&f, (uint16_t)bad[i].unit_kind, 3);
        if (bad[i].unit == 4) fake_unit(&f, (uint16_t)bad[i].unit_kind, 4); /* a unit of ours, but not the one written */
        event_frame(&f, bad[i].type, bad[i].unit, bad[i].id, bad[i].delivery, bad[i].address, 0, 0, 0, 0, bad[i].length);
        if (bad[i].request == FIC_REG_WRITE) {
            write_reply(&f, 3, 1, 0);
            rc = fic_reg_write(f.c, 3, 0x88, 8, 0x10, NULL, NULL);
        } else {
            put64(r, 0);
            reply(&f, FIC_REG_READ, 3, r, 8);
            rc = fic_reg_read(f.c, 3, 0x34, 4, &v);
        }
        check(rc == -EPROTO && fic_is_broken(f.c), bad[i].what);
        fake_close(&f);
    }

    /* Without a handler: the queue and fic_poll_event; a queue of 1 drops the second. */
    fake_open_with(&f, 1, 2000, 1);
    fake_unit(&f, FIC_KIND_SMMUV3, 3);
    event_frame(&f, FIC_EVENT_SMMU_GERROR, 3, 0, 1, 0x80002000, 0x99, 1, 0, 0x3000002, 32);
    event_frame(&f, FIC_EVENT_DEVICE_TLB_TIMEOUT, 3, 0, 0, 0, 0, 0xFFFFFFFF, 0, 0, 32);
    write_reply(&f, 3, 2, 0);
    rc = fic_reg_write(f.c, 3, 0x98, 4, 2, NULL, NULL);
    struct fic_event e;
    int p1 = fic_poll_event(f.c, &e);
    int p2 = fic_poll_event(f.c, &e);
    check(rc == 0 && p1 == 1 && p2 == 0 && fic_events_dropped(f.c) == 1, "fake: queued events are polled; past the capacity they are dropped, counted");
    f.id++;
    /* Reentrancy: a request from inside the handler is -EBUSY. */
    fic_set_event_handler(f.c, keep, NULL);
    reentrant_client = f.c;
    reentrant_rc = 0;
    seen_count = 0;
    event_frame(&f, FIC_EVENT_SMMU_CMD_SYNC, 3, 0, 3, 0, 0, 2, 2, 0, 32);
    write_reply(&f, 3, 1, 0);
    rc = fic_reg_write(f.c, 3, 0x98, 4, 3, NULL, NULL);
    reentrant_client = NULL;
    check(rc == 0 && seen_count == 1 && reentrant_rc == -EBUSY, "fake: a request from inside the event handler is -EBUSY");
    f.id++;
    fake_close(&f);

    /* At 1.0, event types are unknown: skipped. */
    fake_open_with(&f, 0, 2000, 0);
    fake_unit(&f, FIC_KIND_ENGINE, 3);
    event_frame(&f, FIC_EVENT_VTD_FAULT, 3, 0, 1, 0, 0, 0, 0, 0, 32);
    reply(&f, FIC_STATS, 0, (uint8_t[32]){1}, 32);
    struct fic_server_stats ss;
    check(fic_server_stats(f.c, &ss) == 0 && fic_unknown_events(f.c) == 1, "fake: at 1.0 every event type is unknown and skipped");
    fake_close(&f);

    /* IOMMUFD_IOCTL: the argument goes out and comes back as the ioctl left it. */
    fake_open(&f);
    fake_unit(&f, FIC_KIND_VTD, 3);
    uint8_t arg[12] = {12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    memset(r, 0, 20);
    put32(r + 4, 12);
    put32(r + 8, 12);
    put32(r + 16, 5); /* out_ioas_id */
    reply(&f, FIC_IOMMUFD_IOCTL, 3, r, 20);
    int32_t result = 99;
    rc = fic_iommufd_ioctl(f.c, 3, 0x3B81, arg, 12, &result);
    n = sent(&f, got, sizeof got);
    memset(want, 0, 36);
    header(want, 36, FIC_IOMMUFD_IOCTL, f.id, 3);
    put32(want + 16, 0x3B81);
    put32(want + 20, 12);
    want[24] = 12;
    check(rc == 0 && n == 36 && memcmp(got, want, 36) == 0 && result == 0 && get32(arg + 8) == 5,
          "fake: IOMMUFD_IOCTL bytes; the argument is written back");
    f.id++;
    put32(r, (uint32_t)-22);
    reply(&f, FIC_IOMMUFD_IOCTL, 3, r, 20);
    rc = fic_iommufd_ioctl(f.c, 3, 0x3B81, arg, 12, &result);
    check(rc == 0 && result == -22, "fake: a failing ioctl is a success frame with its errno");
    f.id++;
    put32(r, 1);
    reply(&f, FIC_IOMMUFD_IOCTL, 3, r, 20);
    check(fic_iommufd_ioctl(f.c, 3, 0x3B81, arg, 12, &result) == -EPROTO, "fake: an ioctl result above 0 is -EPROTO");
    fake_close(&f);
    fake_open(&f);
    fake_unit(&f, FIC_KIND_VTD, 3);
    put32(r, 0);
    put32(r + 4, 8);
    reply(&f, FIC_IOMMUFD_IOCTL, 3, r, 20);
    check(fic_iommufd_ioctl(f.c, 3, 0x3B81, arg, 12, &result) == -EPROTO, "fake: an ioctl reply of another arg_length is -EPROTO");
    fake_close(&f);
}

static void test_errors_and_frames(void)
{
    struct fake f;
    uint8_t got[256];
    /* A typed error: the code, its detail, the connection goes on. */
    fake_open(&f);
    error_reply(&f, FIC_DESTROY, FIC_STATUS_UNKNOWN_UNIT, 42, 0);
    int rc = fic_destroy(f.c, 42);
    struct fic_error err;
    fic_last_error(f.c, &err);
    check(rc == FIC_E_UNKNOWN_UNIT && FIC_IS_PROTOCOL_ERROR(rc) && FIC_PROTOCOL_STATUS(rc) == FIC_STATUS_UNKNOWN_UNIT &&
              err.status == 5 && err.request_type == FIC_DESTROY && err.unit_id == 42 && err.request_id == f.id && !fic_is_broken(f.c),
          "fake: an error reply is a typed error; last_error has its fields; the connection goes on");
    f.id++;
    for (uint16_t s = 1; s <= 16; s++) {
        if (s >= FIC_STATUS_FRAME_TOO_LARGE && s <= FIC_STATUS_CONNECTION_LIMIT) continue;
        error_reply(&f, FIC_STATS, s, 0, 1000u + s);
        struct fic_server_stats ss;
        rc = fic_server_stats(f.c, &ss);
        fic_last_error(f.c, &err);
        if (rc != FIC_ERROR(s) || err.detail != 1000u + s) break;
        f.id++;
        if (s == 16) check(1, "fake: every error code 1-16 maps to its FIC_E_ value with its detail");
    }
    if (fic_is_broken(f.c)) check(0, "fake: every error code 1-16 maps to its FIC_E_ value with its detail");
    error_reply(&f, FIC_STATS, 200, 0, 0);
    struct fic_server_stats ss;
    rc = fic_server_stats(f.c, &ss);
    check(rc == FIC_ERROR(200) && strcmp(fic_status_name(200), "?") == 0, "fake: a status code of a later version is still a typed error");
    f.id++;
    uint8_t four[4] = {0};
    serve(&f, FIC_STATS | FIC_REPLY_BIT, FIC_STATUS_INTERNAL, f.id, 0, four, 4);
    check(fic_server_stats(f.c, &ss) == -EPROTO, "fake: an error reply with a 4-byte payload is -EPROTO");
    fake_close(&f);
    fake_open(&f);
    error_reply(&f, FIC_DESTROY, FIC_STATUS_UNKNOWN_UNIT, 43, 0);
    check(fic_destroy(f.c, 42) == -EPROTO, "fake: an error reply naming another unit is -EPROTO");
    fake_close(&f);

    /* FRAME_ERROR: typed, and the connection is over. */
    fake_open(&f);
    uint8_t e[8] = {0, 0, 0x10, 0, 0, 0, 0, 0};
    serve(&f, FIC_FRAME_ERROR, FIC_STATUS_FRAME_TOO_LARGE, f.id, 0, e, 8);
    rc = fic_server_stats(f.c, &ss);
    fic_last_error(f.c, &err);
    check(rc == FIC_E_FRAME_TOO_LARGE && err.detail == 0x100000 && fic_is_broken(f.c) && fic_server_stats(f.c, &ss) == -ENOTCONN,
          "fake: a FRAME_ERROR is a typed error and breaks the connection");
    fake_close(&f);
    fake_open(&f);
    serve(&f, FIC_FRAME_ERROR, FIC_STATUS_UNKNOWN_UNIT, f.id, 0, e, 8);
    check(fic_server_stats(f.c, &ss) == -EPROTO, "fake: a FRAME_ERROR with a code it cannot carry is -EPROTO");
    fake_close(&f);

    /* Frames that cannot be trusted. */
    struct {
        const char *what;
        uint32_t length;
        uint16_t type;
        int id_delta;
        int expect;
    } frames[] = {
        {"fake: a reply whose length is 0 is -EPROTO", 0, FIC_STATS | FIC_REPLY_BIT, 0, -EPROTO},
        {"fake: a reply whose length is 15 is -EPROTO", 15, FIC_STATS | FIC_REPLY_BIT, 0, -EPROTO},
        {"fake: a length of 4 GiB - 1 is -EMSGSIZE (nothing allocated for it)", 0xFFFFFFFF, FIC_STATS | FIC_REPLY_BIT, 0, -EMSGSIZE},
        {"fake: a length past max_reply_bytes is -EMSGSIZE", 16 * 1024 * 1024 + 17, FIC_STATS | FIC_REPLY_BIT, 0, -EMSGSIZE},
        {"fake: a reply of another type is -EPROTO", 48, FIC_LOOKUP | FIC_REPLY_BIT, 0, -EPROTO},
        {"fake: a reply without the reply bit is -EPROTO", 48, FIC_STATS, 0, -EPROTO},
        {"fake: a reply to another request id is -EPROTO", 48, FIC_STATS | FIC_REPLY_BIT, 1, -EPROTO},
    };
    for (size_t i = 0; i < sizeof frames / sizeof frames[0]; i++) {
        fake_open(&f);
        uint8_t h[48];
        memset(h, 0, sizeof h);
        put32(h, frames[i].length);
        put16(h + 4, frames[i].type);
        put32(h + 8, f.id + (uint32_t)frames[i].id_delta);
        put32(h + 16, 1);
        peer_write(&f, h, sizeof h);
        rc = fic_server_stats(f.c, &ss);
        check(rc == frames[i].expect && fic_is_broken(f.c), frames[i].what);
        fake_close(&f);
    }

    /* Truncation: the server dies mid-frame (every cut of a STATS reply), or stays silent (the time-out). */
    uint8_t whole[48];
    size_t total = frame(FIC_STATS | FIC_REPLY_BIT, 0, 2, 0, (uint8_t[32]){1, 0, 0, 0, 1}, 32);
    memcpy(whole, frame_buf, total);
    int all = 1;
    for (size_t cut = 0; cut < total; cut++) {
        fake_open(&f);
        peer_write(&f, whole, cut);
        shutdown(f.peer, SHUT_WR);
        rc = fic_server_stats(f.c, &ss);
        all &= rc == -ECONNRESET && fic_is_broken(f.c);
        fake_close(&f);
    }
    check(all, "fake: a reply cut at every one of its 48 bytes is -ECONNRESET");
    fake_open(&f);
    peer_write(&f, whole, total);
    rc = fic_server_stats(f.c, &ss);
    check(rc == 0 && ss.connections == 1 && ss.units == 1, "fake: the same reply whole is accepted");
    fake_close(&f);
    /* A frame whose length says fewer bytes than its type needs: every length from 16 to 47. */
    all = 1;
    for (uint32_t len = 16; len < 48; len++) {
        fake_open(&f);
        uint8_t cut[48];
        memcpy(cut, whole, sizeof cut);
        put32(cut, len);
        peer_write(&f, cut, len);
        rc = fic_server_stats(f.c, &ss);
        all &= rc == -EPROTO;
        fake_close(&f);
    }
    check(all, "fake: a STATS reply framed at every length from 16 to 47 is -EPROTO");
    fake_open_with(&f, 1, 50, 0);
    rc = fic_server_stats(f.c, &ss);
    check(rc == -ETIMEDOUT && fic_is_broken(f.c), "fake: no reply within timeout_ms is -ETIMEDOUT");
    fake_close(&f);
    fake_open_with(&f, 1, 50, 0);
    peer_write(&f, whole, 20); /* a partial frame, then silence */
    rc = fic_server_stats(f.c, &ss);
    check(rc == -ETIMEDOUT, "fake: a frame that stops half-way is -ETIMEDOUT");
    fake_close(&f);
    fake_open(&f);
    close(f.peer);
    f.peer = open("/dev/null", O_RDONLY);
    rc = fic_server_stats(f.c, &ss);
    check(rc == -EPIPE || rc == -ECONNRESET, "fake: a server gone before the request is a socket error");
    fake_close(&f);
    (void)got;
}

/* Every single-byte corruption of a LOOKUP reply with a hit and a miss: an error or a self-consistent answer. */
static void test_corruption_and_garbage(void)
{
    struct fake f;
    uint8_t r[8 + 64];
    memset(r, 0, sizeof r);
    put32(r, 2);
    put32(r + 4, 1);
    r[8] = 1;
    r[9] = 12;
    put64(r + 16, 0x1234);
    put64(r + 24, 0x1000);
    size_t total = frame(FIC_LOOKUP | FIC_REPLY_BIT, 0, 3, 5, r, sizeof r);
    uint8_t whole[96];
    memcpy(whole, frame_buf, total);
    struct fic_iotlb_query q[2] = {{0x1234, 0xFFFFFFFF, 1, 2, 0}, {0x9000, 0xFFFFFFFF, 1, 2, 0}};
    static const uint8_t values[] = {0x00, 0x01, 0x80, 0xFF};
    int consistent = 1, errors = 0, accepted = 0;
    for (size_t at = 0; at < total; at++) {
        for (size_t v = 0; v < sizeof values; v++) {
            if (whole[at] == values[v]) continue;
            fake_open(&f);
            fake_unit(&f, FIC_KIND_ENGINE, 5);
            uint8_t bad[96];
            memcpy(bad, whole, total);
            bad[at] = values[v];
            peer_write(&f, bad, total);
            shutdown(f.peer, SHUT_WR);
            struct fic_lookup_result lr[2];
            memset(lr, 0xAA, sizeof lr);
            int rc = fic_lookup_iotlb(f.c, 5, q, 2, lr);
            if (rc < 0) {
                errors++;
            } else {
                accepted++;
                /* Accepted: only bytes the client may ignore or must pass on changed; the answer is consistent. */
                int hits = (lr[0].hit == 1) + (lr[1].hit == 1);
                consistent &= rc == hits && lr[0].hit <= 1 && lr[1].hit <= 1 && (lr[1].hit || lr[1].output == 0);
            }
            fake_close(&f);
        }
    }
    char what[160];
    snprintf(what, sizeof what, "fake: every single-byte corruption of a LOOKUP reply: %d errors, %d consistent answers, no crash",
             errors, accepted);
    check(consistent && errors > 0, what);

    /* Random garbage in place of the reply: never a crash, never a success that did not come from a valid frame. */
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    int garbage_ok = 1;
    for (int round = 0; round < 300; round++) {
        fake_open(&f);
        uint8_t junk[200];
        size_t len = 1 + (size_t)(round % 199);
        for (size_t i = 0; i < len; i++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            junk[i] = (uint8_t)seed;
        }
        if (round % 3 == 0 && len >= 4) put32(junk, (uint32_t)(16 + (seed % 64))); /* plausible lengths too */
        peer_write(&f, junk, len);
        shutdown(f.peer, SHUT_WR);
        struct fic_server_stats ss;
        int rc = fic_server_stats(f.c, &ss);
        garbage_ok &= rc < 0;
        fake_close(&f);
    }
    check(garbage_ok, "fake: 300 random garbage replies are all errors, no crash");
}

static void test_misc(void)
{
    check(strcmp(fic_strerror(FIC_E_WRONG_KIND), "WRONG_KIND") == 0 && strcmp(fic_strerror(-EPROTO), "malformed frame from the server") == 0 &&
              strcmp(fic_strerror(0), "success") == 0 && fic_strerror(-12345) != NULL,
          "fic_strerror names typed errors and errno values");
    check(FIC_IS_PROTOCOL_ERROR(FIC_E_MALFORMED) && !FIC_IS_PROTOCOL_ERROR(-EPROTO) && !FIC_IS_PROTOCOL_ERROR(-4095) &&
              FIC_PROTOCOL_STATUS(FIC_E_OVERLAP) == 15,
          "FIC_IS_PROTOCOL_ERROR tells typed errors from errno values");
    int fd;
    void *m;
    check(fic_guest_ram_create("x", 1000, &fd, &m) == -EINVAL, "fic_guest_ram_create refuses a size that is not a 4 KiB multiple");
    int rc = fic_guest_ram_create("test-ram", 8192, &fd, &m);
    struct stat st;
    check(rc == 0 && fstat(fd, &st) == 0 && st.st_size == 8192 && ((uint8_t *)m)[8191] == 0, "fic_guest_ram_create: a zeroed 8 KiB memfd, mapped");
    if (rc == 0) {
        munmap(m, 8192);
        close(fd);
    }
    check(fic_is_broken(NULL) == 1 && fic_limits(NULL) == NULL && fic_poll_event(NULL, NULL) == -EINVAL, "NULL clients are refused");
    fic_close(NULL);
}

/* ---- part 2: against a live server ---- */

static struct fic_event live_events[16];
static int live_count;
static void live_keep(void *user, const struct fic_event *e)
{
    (void)user;
    if (live_count < 16) live_events[live_count] = *e;
    live_count++;
}

static void live(const char *path)
{
    struct fic_client *c = NULL, *c10 = NULL, *raw = NULL, *other = NULL;
    int rc = fic_connect(path, NULL, &c);
    if (!check(rc == 0, "live: connected, HELLO 1.1")) {
        printf("  (connect: %s)\n", fic_strerror(rc));
        return;
    }
    const struct fic_limits limits = *fic_limits(c), *l = &limits; /* a copy: it outlives the client */
    check(l->minor == 1 && l->max_frame_bytes >= 4096 && l->max_events_per_request == 64 && l->max_fds_per_frame == 8,
          "live: the 1.1 limits (max_events_per_request 64, max_fds_per_frame 8)");
    struct fic_error err;

    /* Version rules. */
    struct fic_options o10 = {.size = sizeof o10, .flags = FIC_CONNECT_MINOR, .minor = 0};
    rc = fic_connect(path, &o10, &c10);
    check(rc == 0 && fic_limits(c10)->minor == 0 && fic_limits(c10)->max_events_per_request == 0, "live: a 1.0 connection agrees on 1.0");
    int fd;
    void *ram;
    fic_guest_ram_create("test-live-ram", 64 * 1024, &fd, &ram);
    struct fic_region region = {0x80000000, 64 * 1024, 0, fd};
    uint32_t u;
    check(fic_create_vtd(c10, NULL, NULL, &region, 1, &u) == FIC_E_UNSUPPORTED_KIND, "live: at 1.0 a VT-d CREATE is UNSUPPORTED_KIND");
    uint8_t rr[8] = {0, 0, 0, 0, 4, 0, 0, 0};
    check(fic_request(c10, FIC_REG_READ, 1, rr, 8, NULL, 0, NULL, 0, NULL) == FIC_E_UNKNOWN_TYPE, "live: at 1.0 REG_READ is UNKNOWN_TYPE");
    fic_close(c10);
    struct fic_options nh = {.size = sizeof nh, .flags = FIC_CONNECT_NO_HELLO};
    rc = fic_connect(path, &nh, &raw);
    struct fic_server_stats ss;
    check(rc == 0 && fic_server_stats(raw, &ss) == FIC_E_HELLO_STATE, "live: a request before HELLO is HELLO_STATE");
    rc = fic_hello(raw, 2, 0, NULL);
    fic_last_error(raw, &err);
    check(rc == FIC_E_VERSION && err.detail == 1, "live: HELLO of major 2 is VERSION, detail 1");
    check(fic_hello(raw, 1, 1, NULL) == 0 && fic_hello(raw, 1, 1, NULL) == FIC_E_HELLO_STATE, "live: HELLO 1.1 then a second HELLO: HELLO_STATE");
    fic_close(raw);

    /* An engine: every cache, execute, fault plan by ordinals, figures. */
    uint32_t e;
    struct fic_capacities caps = {64, 32, 16};
    check(fic_create_engine(c, &caps, &e) == 0 && fic_unit_kind(c, e) == FIC_KIND_ENGINE, "live: CREATE ENGINE");
    struct fastinval_config_entry ce = {.value = 0xDEAD, .source_id = 0x10, .address_space_id = FASTINVAL_ADDRESS_SPACE_NONE, .domain_id = 4,
                                        .kind = FASTINVAL_CONFIG_CONTEXT};
    uint8_t res[4];
    check(fic_fill_config(c, e, &ce, 1, res) == 1 && res[0] == FASTINVAL_FILL_INSERTED, "live: FILL CONFIG");
    struct fic_config_query cq = {FASTINVAL_CONFIG_CONTEXT, 0x10, FASTINVAL_ADDRESS_SPACE_NONE};
    struct fic_lookup_result lr[4];
    check(fic_lookup_config(c, e, &cq, 1, lr) == 1 && lr[0].output == 0xDEAD && lr[0].domain_id == 4 && lr[0].kind == 1 && lr[0].source_id == 0x10,
          "live: LOOKUP CONFIG hits with its value and tags");
    ce.reserved1 = 1;
    rc = fic_fill_config(c, e, &ce, 1, res);
    fic_last_error(c, &err);
    check(rc == FIC_E_INVALID_ARGUMENT && err.detail == 8 + 20, "live: a reserved byte of a config entry: INVALID_ARGUMENT at its payload offset");
    struct fastinval_devtlb_entry atc[2] = {
        {.input_address = 0x1000, .output_address = 0x5000, .source_id = 0x100, .pasid = FASTINVAL_ADDRESS_SPACE_NONE, .rights = 1, .size_log2 = 12},
        {.input_address = 0x2000, .output_address = 0x6000, .source_id = 0x100, .pasid = FASTINVAL_ADDRESS_SPACE_NONE, .rights = 1, .size_log2 = 12}};
    check(fic_fill_device_tlb(c, e, atc, 2, NULL) == 2, "live: FILL DEVICE_TLB of two entries");
    static const uint64_t first_times_out[] = {0};
    struct fastinval_fault_plan plan = {.size = sizeof plan, .timeout_ordinals = first_times_out, .timeout_ordinal_count = 1};
    check(fic_set_fault_plan(c, e, &plan) == 0, "live: FAULT_PLAN with a time-out ordinal");
    struct fastinval_descriptor d = {.scope = FASTINVAL_SCOPE_DEVICE_TLB, .flags = FASTINVAL_MATCH_SOURCE | FASTINVAL_MATCH_ADDRESS_SPACE,
                                     .address_space_id = FASTINVAL_ADDRESS_SPACE_NONE, .source_id = 0x100, .first = 0, .last = UINT64_MAX};
    struct fastinval_descriptor two[2] = {d, d};
    uint8_t st[2];
    struct fic_execute_result x;
    rc = fic_execute(c, e, two, 2, st, &x);
    check(rc == 0 && st[0] == FASTINVAL_STATUS_TIMED_OUT && st[1] == FASTINVAL_STATUS_OK && x.first_failure_index == 0,
          "live: ordinal 0 times out, ordinal 1 succeeds");
    struct fic_devtlb_query dq = {0x1000, 0x100, FASTINVAL_ADDRESS_SPACE_NONE};
    check(fic_lookup_device_tlb(c, e, &dq, 1, lr) == 0, "live: the second invalidation removed the device's entries");
    struct fic_unit_stats us;
    rc = fic_unit_stats(c, e, &us);
    check(rc == 0 && us.iotlb_capacity == 64 && us.device_tlb_capacity == 32 && us.config_capacity == 16 && us.config_count == 1 &&
              us.device_tlb_invalidations == 2 && us.descriptors == 2 && us.fills == 3,
          "live: STATS of the unit: capacities, counts, ordinals, descriptors, fills");
    check(fic_execute(c, e, NULL, 0, NULL, &x) == 0 && x.first_failure_index == -1, "live: an empty EXECUTE");
    caps.iotlb = l->max_cache_entries + 1;
    rc = fic_create_engine(c, &caps, &u);
    fic_last_error(c, &err);
    check(rc == FIC_E_INVALID_ARGUMENT && err.detail == 8, "live: a capacity above max_cache_entries: INVALID_ARGUMENT, detail 8");
    uint8_t create_bad[24] = {9};
    check(fic_request(c, FIC_CREATE, 0, create_bad, 24, NULL, 0, NULL, 0, NULL) == FIC_E_INVALID_ARGUMENT, "live: CREATE of kind 9: INVALID_ARGUMENT");
    check(fic_request(c, FIC_DESTROY, e, "x", 1, NULL, 0, NULL, 0, NULL) == FIC_E_MALFORMED, "live: DESTROY with a payload: MALFORMED");
    check(fic_request(c, 0x0040, e, NULL, 0, NULL, 0, NULL, 0, NULL) == FIC_E_UNKNOWN_TYPE, "live: the reserved MAP_SHARED_CACHE type: UNKNOWN_TYPE");

    /* UNIT_LIMIT. */
    uint32_t units[64];
    uint32_t made = 1, limit = l->max_units_per_connection;
    while (made < limit && made < 64 && fic_create_engine(c, NULL, &units[made]) == 0) made++;
    rc = fic_create_engine(c, NULL, &u);
    fic_last_error(c, &err);
    check(made == limit && rc == FIC_E_UNIT_LIMIT && err.detail == limit, "live: CREATE past max_units_per_connection: UNIT_LIMIT, detail the limit");
    for (uint32_t i = 1; i < made; i++) fic_destroy(c, units[i]);

    /* Another connection cannot see our unit. */
    fic_connect(path, NULL, &other);
    check(other && fic_unit_stats(other, e, &us) == FIC_E_UNKNOWN_UNIT, "live: another connection's unit is UNKNOWN_UNIT");

    /* VT-d: a device-TLB time-out with the events queued (no handler): the fault MSI, then the time-out event. */
    uint32_t v;
    check(fic_create_vtd(c, NULL, NULL, &region, 1, &v) == 0, "live: CREATE VTD over a memfd");
    uint8_t *m = ram;
    fic_reg_write(c, v, 0x90, 8, 0x80001000, NULL, NULL); /* IQA */
    fic_reg_write(c, v, 0x3C, 4, 0x61, NULL, NULL);       /* FEDATA */
    fic_reg_write(c, v, 0x40, 4, 0xFEE02000, NULL, NULL); /* FEADDR */
    fic_reg_write(c, v, 0x38, 4, 0, NULL, NULL);          /* FECTL: unmasked */
    fic_reg_write(c, v, 0x18, 4, 1u << 26, NULL, NULL);   /* GCMD.QIE */
    static const uint32_t dead[] = {0x42};
    struct fastinval_fault_plan vp = {.size = sizeof vp, .timeout_source_ids = dead, .timeout_source_id_count = 1};
    fic_set_fault_plan(c, v, &vp);
    put64(m + 0x1000, 0x3 | (0x42ull << 32)); /* device-TLB invalidation of 0x42 */
    put64(m + 0x1008, 0x5000);
    put64(m + 0x1010, 0x5 | (1u << 5) | (1ull << 32)); /* wait, status 1 */
    put64(m + 0x1018, 0x80003000);
    uint32_t sent_events = 0;
    rc = fic_reg_write(c, v, 0x88, 8, 0x20, &sent_events, NULL);
    struct fic_event ev1, ev2, ev3;
    int p1 = fic_poll_event(c, &ev1), p2 = fic_poll_event(c, &ev2), p3 = fic_poll_event(c, &ev3);
    check(rc == 0 && sent_events == 2 && p1 == 1 && p2 == 1 && p3 == 0, "live: the doorbell's two events are queued for fic_poll_event");
    check(ev1.type == FIC_EVENT_VTD_FAULT && ev1.address == 0xFEE02000 && ev1.data == 0x61 && (ev1.a & (1u << 6)) != 0 &&
              ev2.type == FIC_EVENT_DEVICE_TLB_TIMEOUT && ev2.a == 0x42 && ev2.unit == v,
          "live: a fault MSI with FSTS.ITE, then the time-out event naming source 0x42");
    check(get32(m + 0x3000) == 0, "live: the aborted wait wrote nothing");
    uint64_t iqercd = 0;
    check(fic_reg_read(c, v, 0xB0, 8, &iqercd) == 0 && ((iqercd >> 32) & 0xFFFF) == 0x42, "live: IQERCD.ITESID = 0x42");
    /* A completion held back by IECTL.IM, sent by the unmasking write: IECTL as that write left it (0). */
    uint32_t v2;
    memset(m + 0x1000, 0, 0x3000);
    check(fic_create_vtd(c, NULL, NULL, &region, 1, &v2) == 0, "live: a second VT-d unit over the same memfd");
    fic_set_event_handler(c, live_keep, NULL);
    fic_reg_write(c, v2, 0x90, 8, 0x80001000, NULL, NULL); /* IQA */
    fic_reg_write(c, v2, 0xA4, 4, 0x66, NULL, NULL);       /* IEDATA */
    fic_reg_write(c, v2, 0xA8, 4, 0xFEE03000, NULL, NULL); /* IEADDR; IECTL stays masked */
    fic_reg_write(c, v2, 0x18, 4, 1u << 26, NULL, NULL);   /* GCMD.QIE */
    put64(m + 0x1000, 0x5 | (1u << 4) | (1u << 5) | (5ull << 32)); /* wait: IF, SW, status 5 */
    put64(m + 0x1008, 0x80003000);
    live_count = 0;
    fic_reg_write(c, v2, 0x88, 8, 0x10, &sent_events, NULL);
    uint64_t iectl = 0;
    fic_reg_read(c, v2, 0xA0, 4, &iectl);
    check(sent_events == 0 && live_count == 0 && iectl == 0xC0000000u && get32(m + 0x3000) == 5,
          "live: a wait with IF under IECTL.IM: status written, IECTL = IM | IP, no event");
    fic_reg_write(c, v2, 0xA0, 4, 0, &sent_events, NULL);
    fic_reg_read(c, v2, 0xA0, 4, &iectl);
    check(sent_events == 1 && live_count == 1 && live_events[0].type == FIC_EVENT_VTD_COMPLETION && live_events[0].data == 0x66 &&
              live_events[0].b == 0 && iectl == 0,
          "live: unmasking IECTL sends the completion event, carrying IECTL as the write left it (0)");
    fic_set_event_handler(c, NULL, NULL);
    fic_destroy(c, v2);
    check(fic_reg_write(c, e, 0x88, 4, 0, NULL, NULL) == FIC_E_WRONG_KIND, "live: REG_WRITE on an engine unit: WRONG_KIND");
    uint8_t bad_create[24 + 16 + 24];
    memset(bad_create, 0, sizeof bad_create);
    put16(bad_create, 3);
    put32(bad_create + 4, 1);
    put32(bad_create + 20, 40);
    put32(bad_create + 24, 1);
    put64(bad_create + 40, 0x80000000);
    put64(bad_create + 48, 0x10000);
    rc = fic_request(c, FIC_CREATE, 0, bad_create, sizeof bad_create, NULL, 0, NULL, 0, NULL);
    fic_last_error(c, &err);
    check(rc == FIC_E_BAD_FD && err.detail == 0xFFFFFFFF, "live: a CREATE declaring a descriptor it does not carry: BAD_FD");
    uint8_t no_regions[24 + 16];
    memset(no_regions, 0, sizeof no_regions);
    put16(no_regions, 3);
    put32(no_regions + 20, 16);
    rc = fic_request(c, FIC_CREATE, 0, no_regions, sizeof no_regions, NULL, 0, NULL, 0, NULL);
    fic_last_error(c, &err);
    check(rc == FIC_E_INVALID_ARGUMENT && err.detail == 24, "live: a VT-d CREATE of 0 regions: INVALID_ARGUMENT, detail 24 (region_count)");
    put32(bad_create + 4, 2);
    rc = fic_request(c, FIC_CREATE, 0, bad_create, sizeof bad_create, NULL, 0, NULL, 0, NULL);
    fic_last_error(c, &err);
    check(rc == FIC_E_INVALID_ARGUMENT && err.detail == 4, "live: fd_count 2 for 1 region: INVALID_ARGUMENT, detail 4 (fd_count)");
    int pipefd[2];
    check(pipe(pipefd) == 0, "live: a pipe");
    struct fic_region piped = {0x80000000, 0x10000, 0, pipefd[0]};
    rc = fic_create_smmu(c, NULL, NULL, &piped, 1, &u);
    fic_last_error(c, &err);
    check(rc == FIC_E_BAD_FD && err.detail == 0, "live: a pipe as guest RAM: BAD_FD, detail 0");
    close(pipefd[0]);
    close(pipefd[1]);

    /* SMMUv3: an ATC time-out with a GERROR MSI, to the handler. */
    memset(ram, 0, 64 * 1024);
    uint32_t s;
    check(fic_create_smmu(c, NULL, NULL, &region, 1, &s) == 0, "live: CREATE SMMUV3 over the same memfd");
    fic_set_event_handler(c, live_keep, NULL);
    fic_reg_write(c, s, 0x90, 8, 0x80001000 | 8, NULL, NULL); /* CMDQ_BASE */
    fic_reg_write(c, s, 0x68, 8, 0x80002000, NULL, NULL);     /* GERROR_IRQ_CFG0 */
    fic_reg_write(c, s, 0x70, 4, 0x99, NULL, NULL);           /* GERROR_IRQ_CFG1 */
    fic_reg_write(c, s, 0x50, 4, 1, NULL, NULL);              /* IRQ_CTRL.GERROR_IRQEN */
    fic_reg_write(c, s, 0x20, 4, 9, NULL, NULL);              /* CR0: CMDQEN | SMMUEN */
    static const uint32_t dead7[] = {0x7};
    struct fastinval_fault_plan sp = {.size = sizeof sp, .timeout_source_ids = dead7, .timeout_source_id_count = 1};
    fic_set_fault_plan(c, s, &sp);
    put64(m + 0x1000, 0x40 | (0x7ull << 32)); /* CMD_ATC_INV, StreamID 7 */
    put64(m + 0x1008, 0x4000);
    put64(m + 0x1010, 0x46); /* CMD_SYNC, SIG_NONE */
    put64(m + 0x1018, 0);
    live_count = 0;
    rc = fic_reg_write(c, s, 0x98, 4, 2, &sent_events, NULL);
    check(rc == 0 && sent_events == 2 && live_count == 2 && live_events[0].type == FIC_EVENT_SMMU_GERROR &&
              live_events[0].address == 0x80002000 && live_events[0].data == 0x99 && ((live_events[0].c >> 24) & 0x7F) == 3 &&
              live_events[1].type == FIC_EVENT_DEVICE_TLB_TIMEOUT && live_events[1].a == 0xFFFFFFFF,
          "live: an ATC time-out: the GERROR MSI (CERROR_ATC_INV_SYNC), then the time-out event");
    check(get32(m + 0x2000) == 0x99, "live: the GERROR MSI's write landed in the memfd");

    /* iommufd: a context with one region and one device; IOMMU_IOAS_ALLOC. */
    struct fic_iommufd_options io = {.flags = 0, .engine_kind = FIC_IOMMUFD_ENGINE_VTD};
    struct fic_iommufd_device dev = {FIC_IOMMUFD_ENGINE_VTD, FIC_IOMMUFD_DEVICE_ATS, 0x300};
    struct fic_region user = {0, 0x4000, 0x8000, fd};
    struct fic_iommufd_unit iu;
    rc = fic_create_iommufd(c, NULL, &io, &user, 1, &dev, 1, &iu);
    check(rc == 0 && iu.user_address[0] >= 0x10000 && iu.device_id[0] != 0 && fic_unit_kind(c, iu.unit) == FIC_KIND_IOMMUFD,
          "live: CREATE IOMMUFD: a user address and a device id");
    uint8_t alloc[12] = {12};
    int32_t result = 1;
    rc = fic_iommufd_ioctl(c, iu.unit, 0x3B81, alloc, sizeof alloc, &result);
    check(rc == 0 && result == 0 && get32(alloc + 8) != 0, "live: IOMMU_IOAS_ALLOC gives an IOAS id");
    uint8_t wrong[12] = {8};
    rc = fic_iommufd_ioctl(c, iu.unit, 0x3B81, wrong, sizeof wrong, &result);
    check(rc == 0 && result < 0, "live: an ioctl struct with a wrong size field fails with a negative errno, as a success frame");
    check(fic_iommufd_ioctl(c, v, 0x3B81, alloc, sizeof alloc, &result) == FIC_E_WRONG_KIND, "live: an ioctl on a VT-d unit: WRONG_KIND");
    check(fic_destroy(c, iu.unit) == 0 && fic_destroy(c, s) == 0 && fic_destroy(c, v) == 0, "live: DESTROY of the shared-memory units");

    /* The server's figures; our units go when the connection closes. */
    rc = fic_server_stats(other, &ss);
    check(rc == 0 && ss.connections >= 2 && ss.units >= 1 && ss.frames > 10 && ss.error_replies > 5, "live: server STATS");
    fic_close(c);
    int gone = 0;
    for (int i = 0; i < 100 && !gone; i++) {
        if (fic_server_stats(other, &ss) == 0 && ss.units == 0) gone = 1;
        else usleep(20000);
    }
    check(gone, "live: closing the connection destroyed its units");

    /* A frame larger than max_frame_bytes (sent before HELLO, when the client does not know the limit): FRAME_TOO_LARGE. */
    rc = fic_connect(path, &nh, &raw);
    size_t big = (size_t)l->max_frame_bytes;
    uint8_t *payload = calloc(1, big);
    rc = payload ? fic_request(raw, FIC_STATS, 0, payload, (uint32_t)big, NULL, 0, NULL, 0, NULL) : -ENOMEM;
    fic_last_error(raw, &err);
    if (rc != FIC_E_FRAME_TOO_LARGE) printf("  (rc %d: %s)\n", rc, fic_strerror(rc));
    check(rc == FIC_E_FRAME_TOO_LARGE && err.detail == l->max_frame_bytes && fic_is_broken(raw),
          "live: a frame past max_frame_bytes: FRAME_TOO_LARGE, the connection closed");
    free(payload);
    fic_close(raw);
    check(fic_server_stats(other, &ss) == 0, "live: the server still serves the other connection");
    fic_close(other);
    munmap(ram, 64 * 1024);
    close(fd);
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) path = argv[++i];
        else if (strncmp(argv[i], "--socket=", 9) == 0) path = argv[i] + 9;
        else {
            fprintf(stderr, "usage: %s [--socket PATH]\n", argv[0]);
            return 2;
        }
    }
    test_hello();
    test_create();
    test_caches();
    test_execute_and_plan();
    test_registers_and_events();
    test_errors_and_frames();
    test_corruption_and_garbage();
    test_misc();
    if (path) live(path);
    else printf("(no --socket: the live-server part is skipped)\n");
    if (failures == 0) printf("c client tests: all %d checks held\n", checks);
    else printf("c client tests: %d of %d check(s) FAILED\n", failures, checks);
    return failures == 0 ? 0 : 1;
}
