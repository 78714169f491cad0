/* SPDX-License-Identifier: MIT */
/*
 * iommufd_preload.c - libiommufd-preload.so: a user-space /dev/iommu for unmodified programs.
 *
 *   LD_PRELOAD=artifacts/native/libiommufd-preload.so ./my_iommufd_program
 *
 * open("/dev/iommu") (and open64, openat, openat64, __open_2, __open64_2, __openat_2, __openat64_2) returns a real file
 * descriptor (a memfd named "fastinval-iommufd", used as a token) bound to a fresh FastInval iommufd context, as each
 * open of the kernel's device gives a fresh iommufd file. ioctl() on such a descriptor goes to
 * fastinval_iommufd_ioctl() with the caller's own pointer and the answer is given with ioctl(2)'s conventions
 * (-1 and errno). close() destroys the context once no descriptor names it any more; dup(), dup2(), dup3() and
 * fcntl(F_DUPFD / F_DUPFD_CLOEXEC) make another descriptor for the same context, as they share one open file in the
 * kernel. Every other path and descriptor goes straight to libc.
 *
 * libfastinval.so (and with it the .NET runtime) is loaded on the first open of /dev/iommu only, from
 * $FASTINVAL_LIB, else from the directory this library was loaded from, else through the ordinary search path: a
 * process that never opens /dev/iommu never starts the runtime.
 *
 * Environment (read at each open of /dev/iommu):
 *   FASTINVAL_IOMMUFD_SELFTEST=0     no IOMMU_TEST_CMD (a kernel built without CONFIG_IOMMUFD_TEST); default 1
 *   FASTINVAL_IOMMUFD_VTD_HW_ERROR=1 VT-d invalidation entries carry hw_error (the per-entry reporting layout)
 *   FASTINVAL_IOMMUFD_DEVICES=LIST   devices bound in each new context, in order, before open() returns: a comma-
 *                                    separated list of vtd:<source id>[:ats] and smmuv3:<stream id>[:ats]; the
 *                                    first gets object id 1, the next 2, and so on (as VFIO_DEVICE_BIND_IOMMUFD
 *                                    would have answered)
 *   FASTINVAL_LIB=PATH               the libfastinval.so to load
 *
 * fork(): the child inherits the descriptors and a copy of every context (copy-on-write memory), and a child that
 * opens /dev/iommu gets a new context of its own; the kernel's child would share the parent's contexts instead. See
 * docs/preload.md for the runtime's behaviour in a forked child.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fastinval.h"

#define PRELOAD_EXPORT __attribute__((visibility("default")))
#define DEVICE_PATH "/dev/iommu"

/* Descriptors at or above this number are refused by open("/dev/iommu") with EMFILE (the token is closed again). */
#define FD_SLOTS 65536

/* fd -> context handle (0: not an iommufd). Read without a lock by ioctl(); written under table_lock. */
static _Atomic uint64_t fd_ctx[FD_SLOTS];

/* fd -> (context, fault object id) of a fault queue's descriptor (IOMMU_FAULT_QUEUE_ALLOC's out_fault_fd), whose
 * read() and write() go to the library. The descriptor holds a reference on its context, as the kernel's fault file
 * holds the iommufd: the context lives until the last of the /dev/iommu descriptors and fault descriptors closes. */
static _Atomic uint64_t fault_ctx[FD_SLOTS];
static uint32_t fault_id[FD_SLOTS];

#define IOMMU_FAULT_QUEUE_ALLOC 0x3b8eu

/* How many descriptors name each live context (dup). Guarded by table_lock; small, scanned linearly. */
struct ctx_ref {
    uint64_t ctx;
    unsigned refs;
};
static struct ctx_ref *ctx_refs;
static size_t ctx_ref_count, ctx_ref_capacity;
static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

/* libc's functions. */
static int (*real_open)(const char *, int, ...);
static int (*real_open64)(const char *, int, ...);
static int (*real_openat)(int, const char *, int, ...);
static int (*real_openat64)(int, const char *, int, ...);
static int (*real___open_2)(const char *, int);
static int (*real___open64_2)(const char *, int);
static int (*real___openat_2)(int, const char *, int);
static int (*real___openat64_2)(int, const char *, int);
static int (*real_ioctl)(int, unsigned long, ...);
static int (*real_close)(int);
static int (*real_dup)(int);
static int (*real_dup2)(int, int);
static int (*real_dup3)(int, int, int);
static int (*real_fcntl)(int, int, ...);
static int (*real_fcntl64)(int, int, ...);
static ssize_t (*real_read)(int, void *, size_t);
static ssize_t (*real_write)(int, const void *, size_t);

/* libfastinval.so's, once loaded. */
static int (*fi_create)(const struct fastinval_iommufd_options *, fastinval_iommufd_t *);
static int (*fi_destroy)(fastinval_iommufd_t);
static int (*fi_ioctl)(fastinval_iommufd_t, uint32_t, void *);
static int (*fi_add_device)(fastinval_iommufd_t, uint32_t, uint32_t, int, uint32_t *);
static int64_t (*fi_fault_read)(fastinval_iommufd_t, uint32_t, void *, size_t);
static int64_t (*fi_fault_write)(fastinval_iommufd_t, uint32_t, const void *, size_t);
static int (*fi_fault_close)(fastinval_iommufd_t, uint32_t);
static _Atomic int library_state; /* 0 not tried, 1 loaded, -1 failed */
static pthread_mutex_t library_lock = PTHREAD_MUTEX_INITIALIZER;

static void *next_symbol(const char *name)
{
    return dlsym(RTLD_NEXT, name);
}

/* Resolves libc's functions; safe to call from any wrapper before the constructor has run (another library's
 * constructor may open files first). dlsym is thread-safe; racing threads store the same values. */
static void resolve_libc(void)
{
    static _Atomic int resolved;
    if (atomic_load_explicit(&resolved, memory_order_acquire))
        return;
    real_open = (int (*)(const char *, int, ...))next_symbol("open");
    real_open64 = (int (*)(const char *, int, ...))next_symbol("open64");
    real_openat = (int (*)(int, const char *, int, ...))next_symbol("openat");
    real_openat64 = (int (*)(int, const char *, int, ...))next_symbol("openat64");
    real___open_2 = (int (*)(const char *, int))next_symbol("__open_2");
    real___open64_2 = (int (*)(const char *, int))next_symbol("__open64_2");
    real___openat_2 = (int (*)(int, const char *, int))next_symbol("__openat_2");
    real___openat64_2 = (int (*)(int, const char *, int))next_symbol("__openat64_2");
    real_ioctl = (int (*)(int, unsigned long, ...))next_symbol("ioctl");
    real_close = (int (*)(int))next_symbol("close");
    real_dup = (int (*)(int))next_symbol("dup");
    real_dup2 = (int (*)(int, int))next_symbol("dup2");
    real_dup3 = (int (*)(int, int, int))next_symbol("dup3");
    real_fcntl = (int (*)(int, int, ...))next_symbol("fcntl");
    real_fcntl64 = (int (*)(int, int, ...))next_symbol("fcntl64");
    if (!real_fcntl64)
        real_fcntl64 = real_fcntl;
    real_read = (ssize_t (*)(int, void *, size_t))next_symbol("read");
    real_write = (ssize_t (*)(int, const void *, size_t))next_symbol("write");
    atomic_store_explicit(&resolved, 1, memory_order_release);
}

__attribute__((constructor)) static void preload_init(void)
{
    resolve_libc();
}

static void *open_library(void)
{
    const char *env = getenv("FASTINVAL_LIB");
    if (env && *env)
        return dlopen(env, RTLD_NOW | RTLD_LOCAL);

    Dl_info info;
    if (dladdr((void *)&open_library, &info) && info.dli_fname && strchr(info.dli_fname, '/')) {
        char path[4096];
        const char *slash = strrchr(info.dli_fname, '/');
        int n = snprintf(path, sizeof path, "%.*s/libfastinval.so", (int)(slash - info.dli_fname), info.dli_fname);
        if (n > 0 && (size_t)n < sizeof path) {
            void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            if (h)
                return h;
        }
    }
    return dlopen("libfastinval.so", RTLD_NOW | RTLD_LOCAL);
}

/* Loads libfastinval.so on first use. Returns 0 or -1 (errno ENODEV: the emulated device is not there). */
static int load_library(void)
{
    int state = atomic_load_explicit(&library_state, memory_order_acquire);
    if (state == 0) {
        pthread_mutex_lock(&library_lock);
        state = atomic_load_explicit(&library_state, memory_order_relaxed);
        if (state == 0) {
            void *h = open_library();
            if (h) {
                fi_create = (int (*)(const struct fastinval_iommufd_options *, fastinval_iommufd_t *))dlsym(h, "fastinval_iommufd_create");
                fi_destroy = (int (*)(fastinval_iommufd_t))dlsym(h, "fastinval_iommufd_destroy");
                fi_ioctl = (int (*)(fastinval_iommufd_t, uint32_t, void *))dlsym(h, "fastinval_iommufd_ioctl");
                fi_add_device = (int (*)(fastinval_iommufd_t, uint32_t, uint32_t, int, uint32_t *))dlsym(h, "fastinval_iommufd_add_device");
                fi_fault_read = (int64_t (*)(fastinval_iommufd_t, uint32_t, void *, size_t))dlsym(h, "fastinval_iommufd_fault_read");
                fi_fault_write = (int64_t (*)(fastinval_iommufd_t, uint32_t, const void *, size_t))dlsym(h, "fastinval_iommufd_fault_write");
                fi_fault_close = (int (*)(fastinval_iommufd_t, uint32_t))dlsym(h, "fastinval_iommufd_fault_close");
            }
            state = h && fi_create && fi_destroy && fi_ioctl && fi_add_device && fi_fault_read && fi_fault_write &&
                            fi_fault_close
                        ? 1
                        : -1;
            if (state < 0)
                fprintf(stderr, "libiommufd-preload: cannot load libfastinval.so (%s); /dev/iommu is not emulated\n",
                        dlerror());
            atomic_store_explicit(&library_state, state, memory_order_release);
        }
        pthread_mutex_unlock(&library_lock);
    }
    if (state < 0) {
        errno = ENODEV;
        return -1;
    }
    return 0;
}

static int is_device_path(const char *path)
{
    return path && strcmp(path, DEVICE_PATH) == 0;
}

/* Called with table_lock held. */
static int ref_add(uint64_t ctx)
{
    for (size_t i = 0; i < ctx_ref_count; i++) {
        if (ctx_refs[i].ctx == ctx) {
            ctx_refs[i].refs++;
            return 0;
        }
    }
    if (ctx_ref_count == ctx_ref_capacity) {
        size_t capacity = ctx_ref_capacity ? ctx_ref_capacity * 2 : 16;
        struct ctx_ref *grown = realloc(ctx_refs, capacity * sizeof *grown);
        if (!grown)
            return -1;
        ctx_refs = grown;
        ctx_ref_capacity = capacity;
    }
    ctx_refs[ctx_ref_count].ctx = ctx;
    ctx_refs[ctx_ref_count].refs = 1;
    ctx_ref_count++;
    return 0;
}

/* Called with table_lock held. Returns the references left. */
static unsigned ref_drop(uint64_t ctx)
{
    for (size_t i = 0; i < ctx_ref_count; i++) {
        if (ctx_refs[i].ctx == ctx) {
            unsigned left = --ctx_refs[i].refs;
            if (left == 0)
                ctx_refs[i] = ctx_refs[--ctx_ref_count];
            return left;
        }
    }
    return 0;
}

/* Destroys a context nobody names any more; waits out an ioctl still running on it on another thread. */
static void destroy_context(uint64_t ctx)
{
    int saved = errno;
    while (fi_destroy(ctx) == -EBUSY)
        sched_yield();
    errno = saved;
}

static int env_flag(const char *name, int fallback)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return fallback;
    return strcmp(v, "0") != 0;
}

/* Binds the devices of FASTINVAL_IOMMUFD_DEVICES. Returns 0 or -1 with errno (EINVAL for a malformed list). */
static int bind_devices(uint64_t ctx)
{
    const char *list = getenv("FASTINVAL_IOMMUFD_DEVICES");
    if (!list || !*list)
        return 0;
    const char *p = list;
    while (*p) {
        uint32_t kind;
        if (strncmp(p, "vtd:", 4) == 0) {
            kind = FASTINVAL_IOMMU_INTEL_VTD;
            p += 4;
        } else if (strncmp(p, "smmuv3:", 7) == 0) {
            kind = FASTINVAL_IOMMU_ARM_SMMUV3;
            p += 7;
        } else {
            errno = EINVAL;
            return -1;
        }
        char *end;
        errno = 0;
        unsigned long id = strtoul(p, &end, 0);
        if (end == p || errno || id > UINT32_MAX) {
            errno = EINVAL;
            return -1;
        }
        p = end;
        int ats = 0;
        if (strncmp(p, ":ats", 4) == 0) {
            ats = 1;
            p += 4;
        }
        if (*p == ',')
            p++;
        else if (*p) {
            errno = EINVAL;
            return -1;
        }
        uint32_t dev_id;
        int rc = fi_add_device(ctx, kind, (uint32_t)id, ats, &dev_id);
        if (rc < 0) {
            errno = -rc;
            return -1;
        }
    }
    return 0;
}

/* open("/dev/iommu", flags): a token descriptor bound to a new context, or -1 with errno. */
static int open_device(int flags)
{
    if (load_library() != 0)
        return -1;

    struct fastinval_iommufd_options options;
    memset(&options, 0, sizeof options);
    options.size = sizeof options;
    if (env_flag("FASTINVAL_IOMMUFD_SELFTEST", 1))
        options.flags |= FASTINVAL_IOMMUFD_SELFTEST;
    if (env_flag("FASTINVAL_IOMMUFD_VTD_HW_ERROR", 0))
        options.flags |= FASTINVAL_IOMMUFD_VTD_HW_ERROR;

    int fd = memfd_create("fastinval-iommufd", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
    if (fd < 0)
        return -1;
    if (fd >= FD_SLOTS) {
        real_close(fd);
        errno = EMFILE;
        return -1;
    }

    uint64_t ctx = 0;
    int rc = fi_create(&options, &ctx);
    if (rc < 0) {
        real_close(fd);
        errno = rc == -EMFILE ? EMFILE : rc == -ENOMEM ? ENOMEM : ENODEV;
        return -1;
    }
    if (bind_devices(ctx) != 0) {
        int e = errno;
        destroy_context(ctx);
        real_close(fd);
        errno = e;
        return -1;
    }

    pthread_mutex_lock(&table_lock);
    if (ref_add(ctx) != 0) {
        pthread_mutex_unlock(&table_lock);
        destroy_context(ctx);
        real_close(fd);
        errno = ENOMEM;
        return -1;
    }
    atomic_store_explicit(&fd_ctx[fd], ctx, memory_order_release);
    pthread_mutex_unlock(&table_lock);
    return fd;
}

static uint64_t context_of(int fd)
{
    if (fd < 0 || fd >= FD_SLOTS)
        return 0;
    return atomic_load_explicit(&fd_ctx[fd], memory_order_acquire);
}

static int fault_id_of(int fd)
{
    return fd >= 0 && fd < FD_SLOTS && atomic_load_explicit(&fault_ctx[fd], memory_order_acquire) != 0;
}

/* Unbinds fd (about to be closed or reused by dup2) and destroys its context when it was the last name of it. A fault
 * descriptor is closed by the library itself (it owns the memfd): returns 1 then, with *rc the close's result. */
static int forget_fd(int fd, int *rc)
{
    if (fd < 0 || fd >= FD_SLOTS)
        return 0;
    if (!atomic_load_explicit(&fd_ctx[fd], memory_order_relaxed) &&
        !atomic_load_explicit(&fault_ctx[fd], memory_order_relaxed))
        return 0;
    pthread_mutex_lock(&table_lock);
    uint64_t ctx = atomic_exchange_explicit(&fd_ctx[fd], 0, memory_order_acq_rel);
    uint64_t fctx = atomic_exchange_explicit(&fault_ctx[fd], 0, memory_order_acq_rel);
    uint32_t fid = fault_id[fd];
    unsigned left = ctx ? ref_drop(ctx) : 1;
    unsigned fleft = fctx ? ref_drop(fctx) : 1;
    pthread_mutex_unlock(&table_lock);
    int closed = 0;
    if (fctx) {
        int saved = errno;
        int r = fi_fault_close(fctx, fid);
        errno = saved;
        if (rc) {
            *rc = r < 0 ? -1 : 0;
            if (r < 0)
                errno = -r;
        }
        closed = 1;
    }
    if (ctx && left == 0)
        destroy_context(ctx);
    if (fctx && fleft == 0)
        destroy_context(fctx);
    return closed;
}

/* After a successful IOMMU_FAULT_QUEUE_ALLOC: its out_fault_fd becomes a fault descriptor of the context. */
static void bind_fault_fd(uint64_t ctx, const void *arg)
{
    uint32_t words[4];
    memcpy(words, arg, sizeof words); /* size, flags, out_fault_id, out_fault_fd: just written by the library */
    int fd = (int)words[3];
    if (fd < 0 || fd >= FD_SLOTS)
        return;
    pthread_mutex_lock(&table_lock);
    if (ref_add(ctx) == 0) {
        fault_id[fd] = words[2];
        atomic_store_explicit(&fault_ctx[fd], ctx, memory_order_release);
    }
    pthread_mutex_unlock(&table_lock);
}

/* After a successful dup of `from` into `to`: `to` names the same context. */
static void bind_dup(int from, int to)
{
    if (to < 0)
        return;
    pthread_mutex_lock(&table_lock);
    uint64_t ctx = from >= 0 && from < FD_SLOTS ? atomic_load_explicit(&fd_ctx[from], memory_order_relaxed) : 0;
    if (ctx && to < FD_SLOTS && ref_add(ctx) == 0)
        atomic_store_explicit(&fd_ctx[to], ctx, memory_order_release);
    pthread_mutex_unlock(&table_lock);
}

static int has_mode(int flags)
{
    return (flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE;
}

/* ---- the interposed functions ---------------------------------------------------------------------------- */

PRELOAD_EXPORT int open(const char *path, int flags, ...)
{
    resolve_libc();
    if (is_device_path(path))
        return open_device(flags);
    if (has_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode_t mode = va_arg(ap, mode_t);
        va_end(ap);
        return real_open(path, flags, mode);
    }
    return real_open(path, flags);
}

PRELOAD_EXPORT int open64(const char *path, int flags, ...)
{
    resolve_libc();
    if (is_device_path(path))
        return open_device(flags);
    if (has_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode_t mode = va_arg(ap, mode_t);
        va_end(ap);
        return real_open64(path, flags, mode);
    }
    return real_open64(path, flags);
}

PRELOAD_EXPORT int openat(int dirfd, const char *path, int flags, ...)
{
    resolve_libc();
    if (is_device_path(path))
        return open_device(flags);
    if (has_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode_t mode = va_arg(ap, mode_t);
        va_end(ap);
        return real_openat(dirfd, path, flags, mode);
    }
    return real_openat(dirfd, path, flags);
}

PRELOAD_EXPORT int openat64(int dirfd, const char *path, int flags, ...)
{
    resolve_libc();
    if (is_device_path(path))
        return open_device(flags);
    if (has_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode_t mode = va_arg(ap, mode_t);
        va_end(ap);
        return real_openat64(dirfd, path, flags, mode);
    }
    return real_openat64(dirfd, path, flags);
}

/* _FORTIFY_SOURCE's checked variants (no mode argument). */
PRELOAD_EXPORT int __open_2(const char *path, int flags)
{
    resolve_libc();
    return is_device_path(path) ? open_device(flags) : real___open_2(path, flags);
}

PRELOAD_EXPORT int __open64_2(const char *path, int flags)
{
    resolve_libc();
    return is_device_path(path) ? open_device(flags) : real___open64_2(path, flags);
}

PRELOAD_EXPORT int __openat_2(int dirfd, const char *path, int flags)
{
    resolve_libc();
    return is_device_path(path) ? open_device(flags) : real___openat_2(dirfd, path, flags);
}

PRELOAD_EXPORT int __openat64_2(int dirfd, const char *path, int flags)
{
    resolve_libc();
    return is_device_path(path) ? open_device(flags) : real___openat64_2(dirfd, path, flags);
}

PRELOAD_EXPORT int ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    uint64_t ctx = context_of(fd);
    if (ctx) {
        /* The kernel's ioctl command is an unsigned int: the upper bits of request are ignored, as there. */
        int rc = fi_ioctl(ctx, (uint32_t)request, arg);
        if (rc < 0) {
            errno = -rc;
            return -1;
        }
        if ((uint32_t)request == IOMMU_FAULT_QUEUE_ALLOC)
            bind_fault_fd(ctx, arg);
        return rc;
    }
    resolve_libc();
    return real_ioctl(fd, request, arg);
}

PRELOAD_EXPORT int close(int fd)
{
    resolve_libc();
    int rc;
    if (forget_fd(fd, &rc))
        return rc;
    return real_close(fd);
}

static int fault_of(int fd, uint64_t *ctx, uint32_t *id)
{
    if (fd < 0 || fd >= FD_SLOTS)
        return 0;
    *ctx = atomic_load_explicit(&fault_ctx[fd], memory_order_acquire);
    *id = fault_id[fd];
    return *ctx != 0;
}

PRELOAD_EXPORT ssize_t read(int fd, void *buf, size_t count)
{
    uint64_t ctx;
    uint32_t id;
    if (fault_of(fd, &ctx, &id)) {
        int64_t rc = fi_fault_read(ctx, id, buf, count);
        if (rc < 0) {
            errno = (int)-rc;
            return -1;
        }
        return (ssize_t)rc;
    }
    resolve_libc();
    return real_read(fd, buf, count);
}

PRELOAD_EXPORT ssize_t write(int fd, const void *buf, size_t count)
{
    uint64_t ctx;
    uint32_t id;
    if (fault_of(fd, &ctx, &id)) {
        int64_t rc = fi_fault_write(ctx, id, buf, count);
        if (rc < 0) {
            errno = (int)-rc;
            return -1;
        }
        return (ssize_t)rc;
    }
    resolve_libc();
    return real_write(fd, buf, count);
}

PRELOAD_EXPORT int dup(int fd)
{
    resolve_libc();
    int to = real_dup(fd);
    if (to >= 0 && context_of(fd))
        bind_dup(fd, to);
    return to;
}

/* dup2/dup3 onto a descriptor of ours: that descriptor is closed first (its context or fault file released), as the
 * kernel closes it inside the call; nothing is released when fd itself is not open (the call fails with EBADF). */
static void release_target(int fd, int to)
{
    if (fd != to && to >= 0 && real_fcntl(fd, F_GETFD) >= 0 && (context_of(to) || fault_id_of(to)))
        (void)forget_fd(to, NULL);
}

PRELOAD_EXPORT int dup2(int fd, int to)
{
    resolve_libc();
    release_target(fd, to);
    int rc = real_dup2(fd, to);
    if (rc >= 0 && fd != to && context_of(fd))
        bind_dup(fd, rc);
    return rc;
}

PRELOAD_EXPORT int dup3(int fd, int to, int flags)
{
    resolve_libc();
    release_target(fd, to);
    int rc = real_dup3(fd, to, flags);
    if (rc >= 0 && context_of(fd))
        bind_dup(fd, rc);
    return rc;
}

static int fcntl_common(int (*real)(int, int, ...), int fd, int cmd, va_list ap)
{
    switch (cmd) {
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
        int min = va_arg(ap, int);
        int to = real(fd, cmd, min);
        if (to >= 0 && context_of(fd))
            bind_dup(fd, to);
        return to;
    }
    /* Commands taking a pointer (locks, owner, seals' queries are ints but a pointer covers both on LP64). */
    case F_GETLK:
    case F_SETLK:
    case F_SETLKW:
    case F_OFD_GETLK:
    case F_OFD_SETLK:
    case F_OFD_SETLKW:
    case F_GETOWN_EX:
    case F_SETOWN_EX:
        return real(fd, cmd, va_arg(ap, void *));
    case F_GETFD:
    case F_GETFL:
    case F_GETOWN:
    case F_GETSIG:
    case F_GETLEASE:
    case F_GETPIPE_SZ:
    case F_GET_SEALS:
        return real(fd, cmd);
    default:
        return real(fd, cmd, va_arg(ap, long));
    }
}

PRELOAD_EXPORT int fcntl(int fd, int cmd, ...)
{
    resolve_libc();
    va_list ap;
    va_start(ap, cmd);
    int rc = fcntl_common(real_fcntl, fd, cmd, ap);
    va_end(ap);
    return rc;
}

PRELOAD_EXPORT int fcntl64(int fd, int cmd, ...)
{
    resolve_libc();
    va_list ap;
    va_start(ap, cmd);
    int rc = fcntl_common(real_fcntl64, fd, cmd, ap);
    va_end(ap);
    return rc;
}
