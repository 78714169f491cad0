using System.Runtime.CompilerServices;
using FastInval.Internals;

namespace FastInval.Uapi;

/// <summary>
/// An ABI-exact emulation of an open <c>/dev/iommu</c> file: the iommufd object table, the generic ioctl dispatch and
/// the commands a VMM needs for user-managed cache invalidation (IOAS_ALLOC, DESTROY, HWPT_ALLOC, VIOMMU_ALLOC,
/// VDEVICE_ALLOC, HWPT_INVALIDATE and, with <see cref="IommufdOptions.Selftest"/>, IOMMU_TEST_CMD), with the kernel's
/// struct layouts, order of checks and errno. Invalidations are carried out by <see cref="InvalidationEngine"/>s that
/// model the physical IOMMUs' caches. See docs/iommufd.md for every rule and every version decision.
/// </summary>
/// <remarks>
/// <para><b>Errors.</b> <see cref="Ioctl"/> returns 0 or a negative Linux errno and never throws for any request code,
/// argument bytes or user pointers. An argument span shorter than what the command must read is EFAULT (an empty span
/// is a NULL argument pointer).</para>
/// <para><b>Threading.</b> Calls are serialized by a lock (ioctls on one file). The engines' lookups may run on other
/// threads at any time (see <see cref="InvalidationEngine"/>); their fills are writers, like the invalidations an ioctl
/// executes, and must not overlap an <see cref="Ioctl"/>.</para>
/// <para><b>Allocation.</b> IOMMU_HWPT_INVALIDATE allocates nothing once the per-domain buffers exist (after the first
/// call on a domain, or after an attach that grows them).</para>
/// </remarks>
public sealed partial class Iommufd : IDisposable
{
    private const uint CommandBase = 0x80;
    private const uint TableLength = 0x94 - CommandBase + 1;           // newest kernel: up to IOMMU_HW_QUEUE_ALLOC
    private const uint TableLengthWithTest = 0xA0 - CommandBase + 1;   // CONFIG_IOMMUFD_TEST adds IOMMU_TEST_CMD at BASE + 32
    private const int LargestCommand = 72;                             // struct iommu_test_cmd

    private readonly object _lock = new();
    private readonly UserAddressSpace _space;
    private readonly UserMemory? _memory;
    private ulong _internalErrors;
    private readonly IommufdOptions _options;
    private InvalidationEngine? _vtdEngine;
    private InvalidationEngine? _smmuEngine;
    private bool _disposed;
    private bool _responded;

    /// <summary>Opens an iommufd over the emulated address space <paramref name="memory"/>.</summary>
    public Iommufd(UserMemory memory, IommufdOptions? options = null)
        : this((UserAddressSpace)memory, options)
    {
    }

    /// <summary>Opens an iommufd whose user pointers resolve in <paramref name="addressSpace"/>: an emulated
    /// <see cref="UserMemory"/>, or <see cref="ProcessMemory.Current"/> for the calling process's own memory.</summary>
    public Iommufd(UserAddressSpace addressSpace, IommufdOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(addressSpace);
        _space = addressSpace;
        _memory = addressSpace.Emulated;
        _options = options ?? new IommufdOptions();
    }

    /// <summary>The emulated user address space the pointers of ioctl arguments resolve in.</summary>
    /// <exception cref="ObjectDisposedException">The file is disposed.</exception>
    /// <exception cref="InvalidOperationException">This file was opened over <see cref="ProcessMemory"/> (see
    /// <see cref="UserAddressSpace"/>).</exception>
    public UserMemory Memory
    {
        get
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);
            return _memory ?? throw new InvalidOperationException("this iommufd resolves user pointers in the process's own memory");
        }
    }

    /// <summary>The user address space the pointers of ioctl arguments resolve in.</summary>
    /// <exception cref="ObjectDisposedException">The file is disposed.</exception>
    public UserAddressSpace UserAddressSpace
    {
        get
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);
            return _space;
        }
    }

    /// <summary>The options this file was opened with.</summary>
    /// <exception cref="ObjectDisposedException">The file is disposed.</exception>
    public IommufdOptions Options
    {
        get
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);
            return _options;
        }
    }

    /// <summary>
    /// Issues one ioctl. <paramref name="arg"/> is the argument struct (its first u32 is <c>size</c>), read and written in
    /// place. Returns 0 or a negative errno, exactly as the kernel would.
    /// </summary>
    public int Ioctl(uint request, Span<byte> arg)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _dispatching = true;
            try
            {
                return Dispatch(request, arg);
            }
            finally
            {
                _dispatching = false;
            }
        }
    }

    /// <summary>
    /// Issues one ioctl whose argument struct itself lies in the user address space at <paramref name="argAddress"/> (the
    /// kernel's view of <c>ioctl(fd, request, arg)</c>): it is read with copy_struct_from_user and the answer is copied
    /// back in place. An unreadable argument is EFAULT before anything is done; an argument that cannot be written back
    /// is EFAULT after the command took effect (see docs/iommufd.md). Returns 0 or a negative errno; never throws for any
    /// request, address or contents.
    /// </summary>
    public int IoctlAt(uint request, ulong argAddress)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _dispatching = true;
            try
            {
                return DispatchAt(request, argAddress);
            }
            finally
            {
                _dispatching = false;
            }
        }
    }

    /// <summary>
    /// Binds a device behind the <paramref name="kind"/> IOMMU, as VFIO_DEVICE_BIND_IOMMUFD does, and returns its object
    /// id (the <c>dev_id</c> of HWPT_ALLOC, VIOMMU_ALLOC and VDEVICE_ALLOC). <paramref name="streamId"/> is the PCI
    /// requester id (VT-d source id, 16 bits) or the SMMUv3 StreamID; <paramref name="ats"/> says whether ATS is enabled
    /// (the device has a device TLB that invalidations must reach).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A VT-d source id above 0xFFFF, or an unknown kind.</exception>
    /// <exception cref="ArgumentException">A device with this stream id is already bound behind that IOMMU.</exception>
    public uint AddDevice(IommuKind kind, uint streamId, bool ats)
    {
        if (kind is not (IommuKind.IntelVtd or IommuKind.ArmSmmuV3))
        {
            ThrowHelper.ArgumentOutOfRange(nameof(kind), "unknown IOMMU kind");
        }

        if (kind == IommuKind.IntelVtd && streamId > 0xFFFF)
        {
            ThrowHelper.ArgumentOutOfRange(nameof(streamId), "a VT-d source id has 16 bits");
        }

        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            foreach (IommufdObject? o in _slots)
            {
                if (o is DeviceObject d && d.Driver == (Driver)kind && d.StreamId == streamId)
                {
                    ThrowHelper.Argument(nameof(streamId), "a device with this stream id is already bound");
                }
            }

            var device = new DeviceObject { Driver = (Driver)kind, StreamId = streamId, Ats = ats };
            uint id = AllocateId();
            if (id == 0)
            {
                throw new InvalidOperationException("the object id space is exhausted");
            }

            device.Users++; // the binder (VFIO) holds the device until RemoveDevice
            Finalize(id, device);
            return id;
        }
    }

    /// <summary>
    /// Attaches a bound device to an IOAS or HWPT, as VFIO_DEVICE_ATTACH_IOMMUFD_PT does (replacing its current
    /// attachment if it has one). An IOAS gets an automatic paging domain (an existing compatible one, else a new one
    /// with the next free id). Returns 0 or a negative errno: ENOENT (no such device or pt, or a nested HWPT from a
    /// vIOMMU without a vDEVICE for this device), EINVAL (pt of another type or another IOMMU's, or a VT-d stage-1
    /// address width other than 48 or 57).
    /// </summary>
    public int AttachDevice(uint deviceId, uint ptId)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (Lookup(deviceId) is not DeviceObject device || device.Owner is not null)
            {
                return -Errno.ENOENT;
            }

            return AttachOrReplace(device, ptId, out _);
        }
    }

    /// <summary>Detaches a bound device (VFIO_DEVICE_DETACH_IOMMUFD_PT); an automatic domain left unused is destroyed.
    /// Returns 0, or ENOENT for an unknown device.</summary>
    public int DetachDevice(uint deviceId)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (Lookup(deviceId) is not DeviceObject device || device.Owner is not null)
            {
                return -Errno.ENOENT;
            }

            Detach(device);
            return 0;
        }
    }

    /// <summary>Unbinds a device added with <see cref="AddDevice"/> (closing its VFIO device file): it is detached, its
    /// vDEVICE is destroyed and its id becomes a tombstone, and the device object is destroyed. Returns 0 or ENOENT.</summary>
    public int RemoveDevice(uint deviceId)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (Lookup(deviceId) is not DeviceObject device || device.Owner is not null)
            {
                return -Errno.ENOENT;
            }

            Unbind(device);
            return 0;
        }
    }

    /// <summary>Invalidations an engine refused as malformed (<see cref="InvalidationStatus.Invalid"/>) while serving
    /// IOMMU_HWPT_INVALIDATE. The converters never produce such a descriptor, so a non-zero count is a FastInval bug: each
    /// occurrence also asserts in debug builds and fails the call with -EIO, entry_num counting only entries known to be
    /// done (the entries before it on the VT-d path, those before its batch on the SMMUv3 path).</summary>
    /// <exception cref="ObjectDisposedException">The context is disposed.</exception>
    public ulong InternalErrors
    {
        get
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed), this);
            return Interlocked.Read(ref _internalErrors);
        }
    }

    /// <summary>Test-only hook on each batch before it is executed (see <see cref="BatchHook"/>).</summary>
    internal BatchHook? TestBatchHook { get; set; }

    /// <summary>The engine modelling the caches of the <paramref name="kind"/> IOMMU (IOTLB, device TLBs, configuration
    /// caches), created on first use. Fill it to model what the hardware cached; replace its fault plan to inject
    /// device-TLB failures.</summary>
    public InvalidationEngine Engine(IommuKind kind)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return kind switch
            {
                IommuKind.IntelVtd => VtdEngine,
                IommuKind.ArmSmmuV3 => SmmuEngine,
                _ => throw new ArgumentOutOfRangeException(nameof(kind)),
            };
        }
    }

    /// <summary>The type of the live object <paramref name="id"/>; false for a free, reserved or tombstoned id.</summary>
    /// <exception cref="ObjectDisposedException">The file is disposed.</exception>
    public bool TryGetObjectType(uint id, out IommufdObjectType type)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            IommufdObject? o = Lookup(id);
            type = o?.Type ?? 0;
            return o is not null;
        }
    }

    /// <summary>
    /// The hardware domain id of an object: the DID of a VT-d nested HWPT (what its IOTLB entries are tagged with, with
    /// PASID 0), or the stage-2 VMID of an SMMUv3 nest-parent HWPT or vIOMMU. False for any other object.
    /// </summary>
    /// <exception cref="ObjectDisposedException">The file is disposed.</exception>
    public bool TryGetDomainId(uint id, out ushort domainId)
    {
        lock (_lock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            switch (Lookup(id))
            {
                case HwptNestedObject { Driver: Driver.IntelVtd } n:
                    domainId = n.DomainId;
                    return true;
                case HwptPagingObject { Driver: Driver.ArmSmmuV3, NestParent: true } p:
                    domainId = p.Vmid;
                    return true;
                case ViommuObject { Driver: Driver.ArmSmmuV3 } v:
                    domainId = v.Vmid;
                    return true;
                default:
                    domainId = 0;
                    return false;
            }
        }
    }

    /// <summary>Releases the engines' pinned memory. Every further call but <see cref="Dispose"/> (which may be called
    /// again) throws <see cref="ObjectDisposedException"/>, <see cref="Ioctl"/> included: a disposed file has no fd to
    /// answer EBADF on, so it is host misuse, not an ioctl error.</summary>
    public void Dispose()
    {
        lock (_lock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            CloseFaultFiles();
            _vtdEngine?.Dispose();
            _smmuEngine?.Dispose();
        }
    }

    private InvalidationEngine VtdEngine => _vtdEngine ??= NewEngine("iommufd-vtd");

    private InvalidationEngine SmmuEngine => _smmuEngine ??= NewEngine("iommufd-smmu");

    private InvalidationEngine NewEngine(string kind)
    {
        var engine = new InvalidationEngine(_options.EngineOptions);
        engine.Metrics.Kind = kind; // the unit tag of the FastInval meter
        return engine;
    }

    /// <summary>
    /// iommufd_fops_ioctl: (1) a number outside the command table goes to the VFIO compatibility handler, not modelled
    /// here: ENOTTY, nothing read; (2) read <c>size</c> (EFAULT); (3) the table entry's request code must equal the request
    /// (holes and commands FastInval does not implement included): ENOTTY; (4) size below the command's minimum: EINVAL;
    /// (5) copy_struct_from_user into a zeroed kernel buffer (E2BIG, EFAULT); (6) the handler. Steps 1–5 write nothing.
    /// </summary>
    private int Dispatch(uint request, Span<byte> arg)
    {
        uint nr = request & 0xFF;
        uint tableLength = _options.Selftest ? TableLengthWithTest : TableLength;
        if (nr < CommandBase || nr - CommandBase >= tableLength)
        {
            return -Errno.ENOTTY;
        }

        if (arg.Length < 4)
        {
            return -Errno.EFAULT;
        }

        uint size = UserCopy.U32(arg, 0);
        (uint code, int minSize, int kernelSize) = Command(nr);
        if (code != request)
        {
            return -Errno.ENOTTY;
        }

        if (size < (uint)minSize)
        {
            return -Errno.EINVAL;
        }

        Span<byte> cmd = stackalloc byte[LargestCommand];
        cmd = cmd[..kernelSize];
        int rc = UserCopy.CopyStruct(cmd, arg, size);
        if (rc != 0)
        {
            return rc;
        }

        return Handle(nr, cmd, arg, size);
    }

    /// <summary>
    /// <see cref="Dispatch"/> with the argument struct in the user address space: the same steps, with the argument read
    /// through the address space into a kernel-sized copy, and the copy written back when the handler responded.
    /// </summary>
    [SkipLocalsInit]
    private int DispatchAt(uint request, ulong argAddress)
    {
        uint nr = request & 0xFF;
        uint tableLength = _options.Selftest ? TableLengthWithTest : TableLength;
        if (nr < CommandBase || nr - CommandBase >= tableLength)
        {
            return -Errno.ENOTTY;
        }

        Span<byte> sizeBytes = stackalloc byte[4];
        if (!_space.TryRead(argAddress, sizeBytes))
        {
            return -Errno.EFAULT;
        }

        uint size = UserCopy.U32(sizeBytes, 0);
        (uint code, int minSize, int kernelSize) = Command(nr);
        if (code != request)
        {
            return -Errno.ENOTTY;
        }

        if (size < (uint)minSize)
        {
            return -Errno.EINVAL;
        }

        if (size > (uint)kernelSize)
        {
            int zero = _space.CheckZeroed(argAddress + (uint)kernelSize, size - (uint)kernelSize);
            if (zero != 0)
            {
                return zero;
            }
        }

        int n = (int)Math.Min(size, (uint)kernelSize);
        Span<byte> arg = stackalloc byte[LargestCommand];
        arg = arg[..kernelSize];
        arg[n..].Clear();
        if (!_space.TryRead(argAddress, arg[..n]))
        {
            return -Errno.EFAULT;
        }

        Span<byte> cmd = stackalloc byte[LargestCommand];
        cmd = cmd[..kernelSize];
        arg.CopyTo(cmd);
        _responded = false;
        int rc = Handle(nr, cmd, arg, size);
        if (_responded && !_space.TryWrite(argAddress, arg[..n]))
        {
            if (rc == 0)
            {
                UndoCreate(nr, cmd);
            }

            return -Errno.EFAULT;
        }

        return rc;
    }

    /// <summary>
    /// A command whose answer could not be copied back fails with EFAULT; the kernel then aborts the object it was
    /// creating (iommufd_object_abort_and_destroy), so the object an allocation just made (IOAS, HWPT, vIOMMU, vDEVICE,
    /// mock device) is destroyed again here and its id freed. Commands that change state without creating anything
    /// (HWPT_INVALIDATE, MOCK_DOMAIN_REPLACE) keep their effect, as in the kernel.
    /// </summary>
    private void UndoCreate(uint nr, ReadOnlySpan<byte> cmd)
    {
        uint id = nr switch
        {
            0x81 => UserCopy.U32(cmd, 8),
            0x89 => UserCopy.U32(cmd, 16),
            0x90 => UserCopy.U32(cmd, 20),
            0x91 => UserCopy.U32(cmd, 12),
            0xA0 when UserCopy.U32(cmd, 4) is MockSelftest.OpMockDomain or MockSelftest.OpMockDomainFlags => UserCopy.U32(cmd, 16),
            _ => 0,
        };
        if (id != 0 && Lookup(id) is { } created)
        {
            Destroy(created);
        }
    }

    /// <summary>The command table entry of <paramref name="nr"/>: its request code, minimum size (offsetofend of the field
    /// the kernel's IOCTL_OP names) and kernel struct size (code 0 for a hole). Every command of the table is here, those
    /// whose work FastInval does not model included, so the size rules come before any other answer.</summary>
    private static (uint Code, int MinSize, int KernelSize) Command(uint nr) => nr switch
    {
        0x80 => (IommufdRequest.Destroy, 8, 8),
        0x81 => (IommufdRequest.IoasAlloc, 12, 12),
        0x82 => (Io(nr), 24, 24),                         // IOAS_ALLOW_IOVAS, allowed_iovas
        0x83 => (Io(nr), 40, 40),                         // IOAS_COPY, src_iova
        0x84 => (Io(nr), 32, 32),                         // IOAS_IOVA_RANGES, out_iova_alignment
        0x85 => (Io(nr), 40, 40),                         // IOAS_MAP, iova
        0x86 => (Io(nr), 24, 24),                         // IOAS_UNMAP, length
        0x87 => (Io(nr), 24, 24),                         // OPTION, val64
        0x88 => (Io(nr), 12, 12),                         // VFIO_IOAS, __reserved
        0x89 => (IommufdRequest.HwptAlloc, 24, 48),
        0x8A => (Io(nr), 32, 40),                         // GET_HW_INFO, __reserved
        0x8B => (Io(nr), 16, 16),                         // HWPT_SET_DIRTY_TRACKING, __reserved
        0x8C => (Io(nr), 48, 48),                         // HWPT_GET_DIRTY_BITMAP, data
        0x8D => (IommufdRequest.HwptInvalidate, 32, 32),
        0x8E => (Io(nr), 16, 16),                         // FAULT_QUEUE_ALLOC, out_fault_fd
        0x8F => (Io(nr), 40, 40),                         // IOAS_MAP_FILE, iova
        0x90 => (IommufdRequest.ViommuAlloc, 24, 40),
        0x91 => (IommufdRequest.VdeviceAlloc, 24, 24),
        0x92 => (Io(nr), 8, 8),                           // IOAS_CHANGE_PROCESS, __reserved
        0x93 => (Io(nr), 28, 32),                         // VEVENTQ_ALLOC, out_veventq_fd
        0x94 => (Io(nr), 40, 40),                         // HW_QUEUE_ALLOC, length
        0xA0 => (IommufdRequest.TestCmd, 68, 72),
        _ => (0u, 0, 0),
    };

    /// <summary>_IO(IOMMUFD_TYPE, nr).</summary>
    private static uint Io(uint nr) => 0x3B00u | nr;

    private int Handle(uint nr, Span<byte> cmd, Span<byte> arg, uint size) => nr switch
    {
        0x80 => DestroyCommand(cmd),
        0x81 => IoasAllocCommand(cmd, arg, size),
        0x86 => IoasUnmapCommand(cmd, arg, size),
        0x87 => OptionCommand(cmd, arg, size),
        0x88 => VfioIoasCommand(cmd, arg, size),
        0x89 => HwptAllocCommand(cmd, arg, size),
        0x8A => GetHwInfoCommand(cmd, arg, size),
        0x8D => HwptInvalidateCommand(cmd, arg, size),
        0x8E => FaultQueueAllocCommand(cmd, arg, size),
        0x90 => ViommuAllocCommand(cmd, arg, size),
        0x91 => VdeviceAllocCommand(cmd, arg, size),
        0x92 => IoasChangeProcessCommand(cmd),
        0xA0 => TestCommand(cmd, arg, size),
        _ => NotModelledCommand(nr, cmd),
    };

    /// <summary>iommufd_ucmd_respond: copies min(size, kernel size) bytes of the kernel buffer back over the argument
    /// (input fields echo; a longer user struct keeps its zero tail). Cannot fault for a span argument: those bytes were
    /// just read; an argument in the address space is written back by <see cref="DispatchAt"/>, which may fault.</summary>
    private void Respond(ReadOnlySpan<byte> cmd, Span<byte> arg, uint size)
    {
        _responded = true;
        int n = (int)Math.Min(size, (uint)cmd.Length);
        cmd[..n].CopyTo(arg);
    }
}
