using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastInval.AmdVi;
using FastInval.Smmu;
using FastInval.Vtd;

namespace FastInval.Native;

/// <summary>A VT-d, SMMUv3 or AMD-Vi unit behind a handle: the unit, the lock that serializes its calls (shared by every
/// unit over one caller's engine) and, for a caller's engine, the share record that keeps that engine's handle from being
/// destroyed under it.</summary>
internal sealed class NativeUnit(VtdIommu? vtd, SmmuV3? smmu, AmdViIommu? amdVi, InvalidationEngine engine, Lock gate, NativeEngineShare? share,
    NativeUnitCallbacks callbacks) : IEngineHolder
{
    public VtdIommu? Vtd { get; } = vtd;

    public SmmuV3? Smmu { get; } = smmu;

    public AmdViIommu? AmdVi { get; } = amdVi;

    /// <summary>The unit's state-image size.</summary>
    public int StateSize => Vtd is not null ? VtdIommu.StateSize : Smmu is not null ? SmmuV3.StateSize : AmdViIommu.StateSize;

    /// <summary>The unit's unanswered device-TLB requests.</summary>
    public int OutstandingDeviceTlbRequests =>
        Vtd?.OutstandingDeviceTlbRequests ?? Smmu?.OutstandingDeviceTlbRequests ?? AmdVi!.OutstandingDeviceTlbRequests;

    /// <inheritdoc/>
    public InvalidationEngine Engine { get; } = engine;

    /// <summary>Held for every register access, save, restore and reset (re-entrant: an interrupt callback may read
    /// registers).</summary>
    public Lock Gate { get; } = gate;

    public NativeEngineShare? Share { get; } = share;

    /// <summary>Counts the interrupt callbacks running (always on the thread that holds <see cref="Gate"/>).</summary>
    public NativeUnitCallbacks Callbacks { get; } = callbacks;

    public ulong ReadRegister(uint offset, int size) =>
        Vtd?.ReadRegister(offset, size) ?? Smmu?.ReadRegister(offset, size) ?? AmdVi!.ReadRegister(offset, size);

    public void WriteRegister(uint offset, ulong value, int size)
    {
        if (Vtd is not null)
        {
            Vtd.WriteRegister(offset, value, size);
        }
        else if (Smmu is not null)
        {
            Smmu.WriteRegister(offset, value, size);
        }
        else
        {
            AmdVi!.WriteRegister(offset, value, size);
        }
    }

    public int SaveState(Span<byte> destination) =>
        Vtd?.SaveState(destination) ?? Smmu?.SaveState(destination) ?? AmdVi!.SaveState(destination);

    public void RestoreState(ReadOnlySpan<byte> image)
    {
        if (Vtd is not null)
        {
            Vtd.RestoreState(image);
        }
        else if (Smmu is not null)
        {
            Smmu.RestoreState(image);
        }
        else
        {
            AmdVi!.RestoreState(image);
        }
    }

    public void Reset()
    {
        if (Vtd is not null)
        {
            Vtd.Reset();
        }
        else if (Smmu is not null)
        {
            Smmu.Reset();
        }
        else
        {
            AmdVi!.Reset();
        }
    }

    public void Dispose()
    {
        Vtd?.Dispose();
        Smmu?.Dispose();
        AmdVi?.Dispose();
    }
}

/// <summary>The C callbacks of one unit in flight (interrupts, device-TLB requests): save, restore and reset refuse to
/// run inside one (-EBUSY), as the header promises, whether or not the unit itself is processing its queue at the time.
/// Callbacks run under the unit's own lock, so one thread at a time changes this; another thread (a device answering
/// while the time-out timer runs the queue) must not be refused for it, hence the owner.</summary>
internal sealed class NativeUnitCallbacks
{
    private int _depth;
    private int _owner;

    /// <summary>The unit's device-TLB sink, if its options gave one.</summary>
    public NativeDeviceTlbSinkAdapter? Sink { get; set; }

    /// <summary>True inside one of the unit's callbacks on the calling thread.</summary>
    public bool OnThisThread => Volatile.Read(ref _depth) != 0 && Volatile.Read(ref _owner) == Environment.CurrentManagedThreadId;

    public void Enter()
    {
        if (_depth++ == 0)
        {
            Volatile.Write(ref _owner, Environment.CurrentManagedThreadId);
        }
    }

    public void Leave()
    {
        if (--_depth == 0)
        {
            Volatile.Write(ref _owner, 0);
        }
    }
}

/// <summary>A C device-TLB request callback as the unit's <see cref="IDeviceTlbSink"/>; keeps the completion the unit
/// answers through for <c>fastinval_device_tlb_complete</c>.</summary>
internal sealed unsafe class NativeDeviceTlbSinkAdapter(delegate* unmanaged<void*, NativeDeviceTlbRequest*, void> request, nint user,
    NativeUnitCallbacks callbacks) : IDeviceTlbSink
{
    private IDeviceTlbCompletion? _completion;

    /// <summary>Where answers go (null before the first request).</summary>
    public IDeviceTlbCompletion? Completion => Volatile.Read(ref _completion);

    public void Submit(in DeviceTlbRequest r, IDeviceTlbCompletion completion)
    {
        Volatile.Write(ref _completion, completion);
        NativeDeviceTlbRequest native = new()
        {
            Ticket = r.Ticket,
            Descriptor = r.Descriptor,
            Index = r.Index,
            Ordinal = r.Ordinal,
            Source = (byte)r.Source,
        };
        callbacks.Enter();
        try
        {
            request((void*)user, &native);
        }
        finally
        {
            callbacks.Leave();
        }
    }
}

/// <summary>The units made over one engine handle: their common lock and how many there are.</summary>
internal sealed class NativeEngineShare
{
    public Lock Gate { get; } = new();

    public int Units { get; set; }
}

/// <summary>The units' section of the C ABI (fastinval.h, "VT-d, SMMUv3 and AMD-Vi units"): guest memory, VT-d, SMMUv3
/// and AMD-Vi units with MMIO register access, interrupt callbacks, invalidation notifiers, save / restore / reset.</summary>
internal static unsafe partial class NativeExports
{
    private const uint VtdNoScalableMode = 1u << 0;
    private const uint VtdNoPasid = 1u << 1;
    private const uint VtdNoDeviceTlb = 1u << 2;
    private const uint VtdNoThrottling = 1u << 3;
    private const uint VtdNoPageRequestDrain = 1u << 4;
    private const uint VtdNoInterruptRemapping = 1u << 5;
    private const uint VtdNoDrainReads = 1u << 6;
    private const uint VtdNoDrainWrites = 1u << 7;
    private const uint VtdCachingMode = 1u << 8;
    private const uint VtdMamvZero = 1u << 9;
    private const uint VtdMhmvZero = 1u << 10;
    private const uint VtdFlags = (1u << 11) - 1;

    private const uint SmmuNoStage1 = 1u << 0;
    private const uint SmmuNoStage2 = 1u << 1;
    private const uint SmmuNoRangeInvalidation = 1u << 2;
    private const uint SmmuNoAts = 1u << 3;
    private const uint SmmuPri = 1u << 4;
    private const uint SmmuStall = 1u << 5;
    private const uint SmmuNoMsi = 1u << 6;
    private const uint SmmuNoSev = 1u << 7;
    private const uint SmmuNoAsid16 = 1u << 8;
    private const uint SmmuNoVmid16 = 1u << 9;
    private const uint SmmuLaxReserved = 1u << 10;
    private const uint SmmuNoSubstreams = 1u << 11;
    private const uint SmmuFlags = (1u << 12) - 1;

    private const uint AmdViNoGuestTranslation = 1u << 0;
    private const uint AmdViNoDeviceTlb = 1u << 1;
    private const uint AmdViNoInvalidateAll = 1u << 2;
    private const uint AmdViFlags = (1u << 3) - 1;

    private const byte FilterDomain = 1;
    private const byte FilterAddressSpace = 2;
    private const byte FilterSource = 4;
    private const byte FilterRange = 8;

    private const uint InterruptMsi = 0;
    private const uint InterruptAmdVi = 4;

    /// <summary>The size of the first version of fastinval_vtd_options and fastinval_smmu_options, before the device-TLB
    /// sink was appended.</summary>
    private const uint OptionsSizeV1 = 64;

    private static readonly object s_shareLock = new();
    private static readonly ConditionalWeakTable<InvalidationEngine, NativeEngineShare> s_shares = new();

    // ---- Guest memory ----------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "fastinval_guest_memory_create")]
    public static int GuestMemoryCreate(ulong* handle)
    {
        try
        {
            if (handle == null)
            {
                return -NativeErrno.EFAULT;
            }

            *handle = 0;
            return AddHandle(new NativeGuestMemory(), HandleKind.GuestMemory, handle);
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_guest_memory_create_callbacks")]
    public static int GuestMemoryCreateCallbacks(delegate* unmanaged<void*, ulong, void*, nuint, int> read,
        delegate* unmanaged<void*, ulong, void*, nuint, int> write, void* user, ulong* handle)
    {
        try
        {
            if (handle == null || read == null || write == null)
            {
                return handle == null ? -NativeErrno.EFAULT : Fail(handle, -NativeErrno.EFAULT);
            }

            *handle = 0;
            nint u = (nint)user;
            var memory = new CallbackGuestMemory(
                (address, destination) =>
                {
                    fixed (byte* p = destination)
                    {
                        return read((void*)u, address, p, (nuint)destination.Length) == 0;
                    }
                },
                (address, source) =>
                {
                    fixed (byte* p = source)
                    {
                        return write((void*)u, address, p, (nuint)source.Length) == 0;
                    }
                });
            return AddHandle(memory, HandleKind.GuestMemory, handle);
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_guest_memory_destroy")]
    public static int GuestMemoryDestroy(ulong handle)
    {
        try
        {
            return HandleTable.Remove(handle, HandleKind.GuestMemory, out _);
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_guest_memory_map")]
    public static int GuestMemoryMap(ulong handle, ulong guestPhysicalAddress, void* host, ulong length)
    {
        int rc = HandleTable.Enter(handle, HandleKind.GuestMemory, out GuestAddressSpace? memory);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            if (memory is not NativeGuestMemory native)
            {
                return -NativeErrno.EINVAL; // a callback address space has no ranges
            }

            if (host == null)
            {
                return -NativeErrno.EFAULT;
            }

            native.Map(guestPhysicalAddress, (nint)host, length); // empty, wrapping or overlapping: ArgumentException
            return 0;
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
        finally
        {
            HandleTable.Leave(handle);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_guest_memory_unmap")]
    public static int GuestMemoryUnmap(ulong handle, ulong guestPhysicalAddress)
    {
        int rc = HandleTable.Enter(handle, HandleKind.GuestMemory, out GuestAddressSpace? memory);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            if (memory is not NativeGuestMemory native)
            {
                return -NativeErrno.EINVAL;
            }

            return native.Unmap(guestPhysicalAddress) ? 0 : -NativeErrno.ENOENT;
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
        finally
        {
            HandleTable.Leave(handle);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_guest_memory_read")]
    public static int GuestMemoryRead(ulong handle, ulong guestPhysicalAddress, void* destination, nuint length) =>
        GuestMemoryAccess(handle, guestPhysicalAddress, destination, length, write: false);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_guest_memory_write")]
    public static int GuestMemoryWrite(ulong handle, ulong guestPhysicalAddress, void* source, nuint length) =>
        GuestMemoryAccess(handle, guestPhysicalAddress, source, length, write: true);

    private static int GuestMemoryAccess(ulong handle, ulong address, void* buffer, nuint length, bool write)
    {
        if (length > int.MaxValue)
        {
            return -NativeErrno.EINVAL;
        }

        if (length != 0 && buffer == null)
        {
            return -NativeErrno.EFAULT;
        }

        int rc = HandleTable.Enter(handle, HandleKind.GuestMemory, out GuestAddressSpace? memory);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            bool ok = write
                ? memory!.TryWrite(address, new ReadOnlySpan<byte>(buffer, (int)length))
                : memory!.TryRead(address, new Span<byte>(buffer, (int)length));
            return ok ? 0 : -NativeErrno.EFAULT;
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
        finally
        {
            HandleTable.Leave(handle);
        }
    }

    // ---- VT-d, SMMUv3 and AMD-Vi units -------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "fastinval_vtd_create")]
    public static int VtdCreate(ulong memoryHandle, NativeVtdOptions* options, ulong engineHandle, ulong* handle)
    {
        try
        {
            if (handle == null)
            {
                return -NativeErrno.EFAULT;
            }

            *handle = 0;
            var callbacks = new NativeUnitCallbacks();
            int rc = ToVtdOptions(options, engineHandle != 0, callbacks, out VtdOptions? vtdOptions);
            return rc != 0 ? rc : CreateUnit(memoryHandle, engineHandle, HandleKind.Vtd, vtdOptions, null, null, callbacks, handle);
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_smmu_create")]
    public static int SmmuCreate(ulong memoryHandle, NativeSmmuOptions* options, ulong engineHandle, ulong* handle)
    {
        try
        {
            if (handle == null)
            {
                return -NativeErrno.EFAULT;
            }

            *handle = 0;
            var callbacks = new NativeUnitCallbacks();
            int rc = ToSmmuOptions(options, engineHandle != 0, callbacks, out SmmuOptions? smmuOptions);
            return rc != 0 ? rc : CreateUnit(memoryHandle, engineHandle, HandleKind.Smmu, null, smmuOptions, null, callbacks, handle);
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_amdvi_create")]
    public static int AmdViCreate(ulong memoryHandle, NativeAmdViOptions* options, ulong engineHandle, ulong* handle)
    {
        try
        {
            if (handle == null)
            {
                return -NativeErrno.EFAULT;
            }

            *handle = 0;
            var callbacks = new NativeUnitCallbacks();
            int rc = ToAmdViOptions(options, engineHandle != 0, callbacks, out AmdViOptions? amdViOptions);
            return rc != 0 ? rc : CreateUnit(memoryHandle, engineHandle, HandleKind.AmdVi, null, null, amdViOptions, callbacks, handle);
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_vtd_destroy")]
    public static int VtdDestroy(ulong handle) => DestroyUnit(handle, HandleKind.Vtd);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_smmu_destroy")]
    public static int SmmuDestroy(ulong handle) => DestroyUnit(handle, HandleKind.Smmu);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_vtd_read")]
    public static int VtdRead(ulong handle, uint offset, uint size, ulong* value) => UnitRead(handle, HandleKind.Vtd, offset, size, value);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_smmu_read")]
    public static int SmmuRead(ulong handle, uint offset, uint size, ulong* value) => UnitRead(handle, HandleKind.Smmu, offset, size, value);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_vtd_write")]
    public static int VtdWrite(ulong handle, uint offset, uint size, ulong value) => UnitWrite(handle, HandleKind.Vtd, offset, size, value);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_smmu_write")]
    public static int SmmuWrite(ulong handle, uint offset, uint size, ulong value) => UnitWrite(handle, HandleKind.Smmu, offset, size, value);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_vtd_save_state")]
    public static int VtdSaveState(ulong handle, void* buffer, nuint size) => UnitSave(handle, HandleKind.Vtd, buffer, size);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_smmu_save_state")]
    public static int SmmuSaveState(ulong handle, void* buffer, nuint size) => UnitSave(handle, HandleKind.Smmu, buffer, size);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_vtd_restore_state")]
    public static int VtdRestoreState(ulong handle, void* image, nuint size) => UnitRestore(handle, HandleKind.Vtd, image, size);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_smmu_restore_state")]
    public static int SmmuRestoreState(ulong handle, void* image, nuint size) => UnitRestore(handle, HandleKind.Smmu, image, size);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_vtd_reset")]
    public static int VtdReset(ulong handle) => UnitReset(handle, HandleKind.Vtd);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_smmu_reset")]
    public static int SmmuReset(ulong handle) => UnitReset(handle, HandleKind.Smmu);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_amdvi_destroy")]
    public static int AmdViDestroy(ulong handle) => DestroyUnit(handle, HandleKind.AmdVi);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_amdvi_read")]
    public static int AmdViRead(ulong handle, uint offset, uint size, ulong* value) => UnitRead(handle, HandleKind.AmdVi, offset, size, value);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_amdvi_write")]
    public static int AmdViWrite(ulong handle, uint offset, uint size, ulong value) => UnitWrite(handle, HandleKind.AmdVi, offset, size, value);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_amdvi_save_state")]
    public static int AmdViSaveState(ulong handle, void* buffer, nuint size) => UnitSave(handle, HandleKind.AmdVi, buffer, size);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_amdvi_restore_state")]
    public static int AmdViRestoreState(ulong handle, void* image, nuint size) => UnitRestore(handle, HandleKind.AmdVi, image, size);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_amdvi_reset")]
    public static int AmdViReset(ulong handle) => UnitReset(handle, HandleKind.AmdVi);

    private static int CreateUnit(ulong memoryHandle, ulong engineHandle, HandleKind kind, VtdOptions? vtdOptions, SmmuOptions? smmuOptions,
        AmdViOptions? amdViOptions, NativeUnitCallbacks callbacks, ulong* handle)
    {
        int rc = HandleTable.Enter(memoryHandle, HandleKind.GuestMemory, out GuestAddressSpace? memory);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            if (engineHandle == 0)
            {
                NativeUnit own = NewUnit(memory!, null, vtdOptions, smmuOptions, amdViOptions, new Lock(), null, callbacks);
                rc = AddHandle(own, kind, handle);
                if (rc != 0)
                {
                    own.Dispose();
                }

                return rc;
            }

            // Over a caller's engine: only an engine handle itself (not a unit's), counted so that it cannot be destroyed
            // while a unit runs on it.
            if ((HandleKind)(byte)(engineHandle >> 24) != HandleKind.Engine)
            {
                return -NativeErrno.EBADF;
            }

            lock (s_shareLock)
            {
                rc = HandleTable.Enter(engineHandle, HandleKind.Engine, out InvalidationEngine? engine);
                if (rc != 0)
                {
                    return rc;
                }

                try
                {
                    NativeEngineShare share = s_shares.GetOrCreateValue(engine!);
                    NativeUnit unit = NewUnit(memory!, engine, vtdOptions, smmuOptions, amdViOptions, share.Gate, share, callbacks);
                    rc = AddHandle(unit, kind, handle);
                    if (rc != 0)
                    {
                        unit.Dispose();
                        return rc;
                    }

                    share.Units++;
                    return 0;
                }
                finally
                {
                    HandleTable.Leave(engineHandle);
                }
            }
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
        finally
        {
            HandleTable.Leave(memoryHandle);
        }
    }

    private static NativeUnit NewUnit(GuestAddressSpace memory, InvalidationEngine? engine, VtdOptions? vtdOptions, SmmuOptions? smmuOptions,
        AmdViOptions? amdViOptions, Lock gate, NativeEngineShare? share, NativeUnitCallbacks callbacks)
    {
        if (vtdOptions is not null)
        {
            VtdIommu vtd = engine is null ? new VtdIommu(memory, vtdOptions) : new VtdIommu(memory, engine, vtdOptions);
            return new NativeUnit(vtd, null, null, vtd.Engine, gate, share, callbacks);
        }

        if (amdViOptions is not null)
        {
            AmdViIommu amdVi = engine is null ? new AmdViIommu(memory, amdViOptions) : new AmdViIommu(memory, engine, amdViOptions);
            return new NativeUnit(null, null, amdVi, amdVi.Engine, gate, share, callbacks);
        }

        SmmuV3 smmu = engine is null ? new SmmuV3(memory, smmuOptions) : new SmmuV3(memory, engine, smmuOptions);
        return new NativeUnit(null, smmu, null, smmu.Engine, gate, share, callbacks);
    }

    private static int DestroyUnit(ulong handle, HandleKind kind)
    {
        try
        {
            int rc = HandleTable.Remove(handle, kind, out object? target);
            if (rc != 0)
            {
                return rc;
            }

            var unit = (NativeUnit)target!;
            using (unit.Gate.EnterScope())
            {
                unit.Dispose(); // units sharing the engine may be mid-call on other threads: wait for them
            }

            if (unit.Share is NativeEngineShare share)
            {
                lock (s_shareLock)
                {
                    share.Units--;
                }
            }

            return 0;
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
    }

    /// <summary>Removes an engine handle for fastinval_engine_destroy: -EBUSY while units made over it exist.</summary>
    private static int RemoveEngineHandle(ulong handle, out object? target)
    {
        lock (s_shareLock)
        {
            target = null;
            if ((HandleKind)(byte)(handle >> 24) == HandleKind.Engine &&
                HandleTable.Enter(handle, HandleKind.Engine, out InvalidationEngine? engine) == 0)
            {
                bool used = s_shares.TryGetValue(engine!, out NativeEngineShare? share) && share.Units != 0;
                HandleTable.Leave(handle);
                if (used)
                {
                    return -NativeErrno.EBUSY;
                }
            }

            return HandleTable.Remove(handle, HandleKind.Engine, out target);
        }
    }

    private static int UnitRead(ulong handle, HandleKind kind, uint offset, uint size, ulong* value)
    {
        if (value == null)
        {
            return -NativeErrno.EFAULT;
        }

        if (size is not (4 or 8))
        {
            return -NativeErrno.EINVAL;
        }

        int rc = HandleTable.Enter(handle, kind, out NativeUnit? unit);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            using (unit!.Gate.EnterScope())
            {
                *value = unit.ReadRegister(offset, (int)size);
            }

            return 0;
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
        finally
        {
            HandleTable.Leave(handle);
        }
    }

    private static int UnitWrite(ulong handle, HandleKind kind, uint offset, uint size, ulong value)
    {
        if (size is not (4 or 8))
        {
            return -NativeErrno.EINVAL;
        }

        int rc = HandleTable.Enter(handle, kind, out NativeUnit? unit);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            using (unit!.Gate.EnterScope())
            {
                unit.WriteRegister(offset, value, (int)size);
            }

            return 0;
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
        finally
        {
            HandleTable.Leave(handle);
        }
    }

    private static int UnitSave(ulong handle, HandleKind kind, void* buffer, nuint size)
    {
        int stateSize = kind switch
        {
            HandleKind.Vtd => VtdIommu.StateSize,
            HandleKind.Smmu => SmmuV3.StateSize,
            _ => AmdViIommu.StateSize,
        };
        if (size == 0)
        {
            // The size query: answered for a live handle only, so that a stale one is still -EBADF.
            int check = HandleTable.Enter(handle, kind, out NativeUnit? _);
            if (check != 0)
            {
                return check;
            }

            HandleTable.Leave(handle);
            return stateSize;
        }

        if (buffer == null)
        {
            return -NativeErrno.EFAULT;
        }

        if (size < (nuint)stateSize)
        {
            return -NativeErrno.ERANGE;
        }

        int rc = HandleTable.Enter(handle, kind, out NativeUnit? unit);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            var destination = new Span<byte>(buffer, stateSize);
            using (unit!.Gate.EnterScope())
            {
                if (unit.Callbacks.OnThisThread || unit.OutstandingDeviceTlbRequests != 0)
                {
                    return -NativeErrno.EBUSY;
                }

                return unit.SaveState(destination);
            }
        }
        catch (InvalidOperationException e) when (e is not ObjectDisposedException)
        {
            return -NativeErrno.EBUSY; // from inside an interrupt callback of the unit
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
        finally
        {
            HandleTable.Leave(handle);
        }
    }

    private static int UnitRestore(ulong handle, HandleKind kind, void* image, nuint size)
    {
        if (image == null)
        {
            return -NativeErrno.EFAULT;
        }

        if (size > int.MaxValue)
        {
            return -NativeErrno.EINVAL;
        }

        int rc = HandleTable.Enter(handle, kind, out NativeUnit? unit);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            var source = new ReadOnlySpan<byte>(image, (int)size);
            using (unit!.Gate.EnterScope())
            {
                if (unit.Callbacks.OnThisThread)
                {
                    return -NativeErrno.EBUSY;
                }

                unit.RestoreState(source);
            }

            return 0;
        }
        catch (InvalidOperationException e) when (e is not ObjectDisposedException)
        {
            return -NativeErrno.EBUSY;
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e); // a bad image: ArgumentException, -EINVAL
        }
        finally
        {
            HandleTable.Leave(handle);
        }
    }

    private static int UnitReset(ulong handle, HandleKind kind)
    {
        int rc = HandleTable.Enter(handle, kind, out NativeUnit? unit);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            using (unit!.Gate.EnterScope())
            {
                if (unit.Callbacks.OnThisThread)
                {
                    return -NativeErrno.EBUSY;
                }

                unit.Reset();
            }

            return 0;
        }
        catch (InvalidOperationException e) when (e is not ObjectDisposedException)
        {
            return -NativeErrno.EBUSY;
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
        finally
        {
            HandleTable.Leave(handle);
        }
    }

    // ---- Notifiers -------------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "fastinval_notifier_subscribe")]
    public static int NotifierSubscribe(ulong target, NativeNotifierFilter* filter,
        delegate* unmanaged<void*, InvalidationRecord*, nuint, void> callback, void* user, ulong* handle)
    {
        try
        {
            if (handle == null)
            {
                return -NativeErrno.EFAULT;
            }

            *handle = 0;
            if (callback == null)
            {
                return -NativeErrno.EFAULT;
            }

            int rc = ToNotifierFilter(filter, out NotifierFilter notifierFilter);
            if (rc != 0)
            {
                return rc;
            }

            rc = HandleTable.Enter(target, HandleKind.Engine, out InvalidationEngine? engine);
            if (rc != 0)
            {
                return rc;
            }

            try
            {
                nint u = (nint)user;
                NotifierSubscription subscription = engine!.Notifiers.Subscribe(records =>
                {
                    fixed (InvalidationRecord* p = records)
                    {
                        callback((void*)u, p, (nuint)records.Length);
                    }
                }, notifierFilter);
                rc = AddHandle(subscription, HandleKind.Notifier, handle);
                if (rc != 0)
                {
                    subscription.Dispose();
                }

                return rc;
            }
            finally
            {
                HandleTable.Leave(target);
            }
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_notifier_unsubscribe")]
    public static int NotifierUnsubscribe(ulong handle)
    {
        try
        {
            int rc = HandleTable.Remove(handle, HandleKind.Notifier, out object? target);
            if (rc == 0)
            {
                ((NotifierSubscription)target!).Dispose();
            }

            return rc;
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
    }

    // ---- Conversions -----------------------------------------------------------------------------------

    private static int Fail(ulong* handle, int rc)
    {
        *handle = 0;
        return rc;
    }

    private static int AddHandle(object target, HandleKind kind, ulong* handle)
    {
        ulong h = HandleTable.Add(target, kind);
        if (h == 0)
        {
            return -NativeErrno.EMFILE;
        }

        *handle = h;
        return 0;
    }

    private static int ToVtdOptions(NativeVtdOptions* o, bool callersEngine, NativeUnitCallbacks callbacks, out VtdOptions? options)
    {
        options = null;
        if (o == null)
        {
            options = new VtdOptions();
            return 0;
        }

        if ((o->Size != OptionsSizeV1 && o->Size != (uint)sizeof(NativeVtdOptions)) || (o->Flags & ~VtdFlags) != 0 || o->Reserved0 != 0 || o->Reserved1 != 0 ||
            (o->HostAddressWidth != 0 && o->HostAddressWidth is < 32 or > 64) || o->MaxAddressMask > 63 || o->MaxHandleMask > 15 ||
            ((o->Flags & VtdMamvZero) != 0 && o->MaxAddressMask != 0) || ((o->Flags & VtdMhmvZero) != 0 && o->MaxHandleMask != 0) ||
            (o->Interrupt == null && o->InterruptUser != null))
        {
            return -NativeErrno.EINVAL;
        }

        DeviceTlbSinkOptions? sink = null;
        int rc = UnitEngineOptions(&o->Engine, o->FaultPlan, callersEngine, out EngineOptions? engine, out FaultPlan? plan);
        rc = rc != 0 ? rc : ToSinkOptions(o->Size == OptionsSizeV1 ? null : &o->DeviceTlb, callbacks, out sink);
        if (rc != 0)
        {
            return rc;
        }

        uint f = o->Flags;
        Action<ulong, uint>? msi = null;
        if (o->Interrupt != null)
        {
            delegate* unmanaged<void*, uint, ulong, uint, void> fn = o->Interrupt;
            nint user = (nint)o->InterruptUser;
            msi = (address, data) => Interrupt(callbacks, fn, user, InterruptMsi, address, data);
        }

        options = new VtdOptions
        {
            ScalableMode = (f & VtdNoScalableMode) == 0,
            Pasid = (f & VtdNoPasid) == 0,
            DeviceTlb = (f & VtdNoDeviceTlb) == 0,
            DeviceTlbThrottling = (f & VtdNoThrottling) == 0,
            PageRequestDrain = (f & VtdNoPageRequestDrain) == 0,
            InterruptRemapping = (f & VtdNoInterruptRemapping) == 0,
            DrainReads = (f & VtdNoDrainReads) == 0,
            DrainWrites = (f & VtdNoDrainWrites) == 0,
            CachingMode = (f & VtdCachingMode) != 0,
            MaxAddressMask = (f & VtdMamvZero) != 0 ? 0 : o->MaxAddressMask == 0 ? 18 : o->MaxAddressMask,
            MaxHandleMask = (f & VtdMhmvZero) != 0 ? 0 : o->MaxHandleMask == 0 ? 15 : o->MaxHandleMask,
            HostAddressWidth = o->HostAddressWidth == 0 ? 48 : o->HostAddressWidth,
            Msi = msi,
            Engine = engine,
            FaultPlan = plan,
            DeviceTlbSink = sink,
        };
        return 0;
    }

    private static int ToSmmuOptions(NativeSmmuOptions* o, bool callersEngine, NativeUnitCallbacks callbacks, out SmmuOptions? options)
    {
        options = null;
        if (o == null)
        {
            options = new SmmuOptions();
            return 0;
        }

        if ((o->Size != OptionsSizeV1 && o->Size != (uint)sizeof(NativeSmmuOptions)) || (o->Flags & ~SmmuFlags) != 0 || o->Reserved != 0 ||
            o->SubstreamIdBits > 20 || ((o->Flags & SmmuNoSubstreams) != 0 && o->SubstreamIdBits != 0) ||
            o->StreamIdBits > 32 || o->MaxCommandQueueLog2 > 19 ||
            o->OutputAddressBits is not (0 or 32 or 36 or 40 or 42 or 44 or 48 or 52) ||
            (o->Interrupt == null && o->InterruptUser != null))
        {
            return -NativeErrno.EINVAL;
        }

        DeviceTlbSinkOptions? sink = null;
        int rc = UnitEngineOptions(&o->Engine, o->FaultPlan, callersEngine, out EngineOptions? engine, out FaultPlan? plan);
        rc = rc != 0 ? rc : ToSinkOptions(o->Size == OptionsSizeV1 ? null : &o->DeviceTlb, callbacks, out sink);
        if (rc != 0)
        {
            return rc;
        }

        uint f = o->Flags;
        Action<ulong, uint>? msi = null;
        Action<SmmuInterrupt>? wired = null;
        if (o->Interrupt != null)
        {
            delegate* unmanaged<void*, uint, ulong, uint, void> fn = o->Interrupt;
            nint user = (nint)o->InterruptUser;
            msi = (address, data) => Interrupt(callbacks, fn, user, InterruptMsi, address, data);
            wired = kind => Interrupt(callbacks, fn, user, (uint)kind, 0, 0);
        }

        options = new SmmuOptions
        {
            Features = new SmmuFeatures
            {
                Stage1 = (f & SmmuNoStage1) == 0,
                Stage2 = (f & SmmuNoStage2) == 0,
                RangeInvalidation = (f & SmmuNoRangeInvalidation) == 0,
                Ats = (f & SmmuNoAts) == 0,
                Pri = (f & SmmuPri) != 0,
                Stall = (f & SmmuStall) != 0,
                Msi = (f & SmmuNoMsi) == 0,
                Sev = (f & SmmuNoSev) == 0,
                Asid16 = (f & SmmuNoAsid16) == 0,
                Vmid16 = (f & SmmuNoVmid16) == 0,
                StrictReservedFields = (f & SmmuLaxReserved) == 0,
                SubstreamIdBits = (f & SmmuNoSubstreams) != 0 ? 0 : o->SubstreamIdBits == 0 ? 20 : o->SubstreamIdBits,
            },
            StreamIdBits = o->StreamIdBits == 0 ? 16 : o->StreamIdBits,
            MaxCommandQueueLog2 = o->MaxCommandQueueLog2 == 0 ? 19 : o->MaxCommandQueueLog2,
            OutputAddressBits = o->OutputAddressBits == 0 ? 48 : o->OutputAddressBits,
            Msi = msi,
            WiredInterrupt = wired,
            Engine = engine,
            FaultPlan = plan,
            DeviceTlbSink = sink,
        };
        return 0;
    }

    private static int ToAmdViOptions(NativeAmdViOptions* o, bool callersEngine, NativeUnitCallbacks callbacks, out AmdViOptions? options)
    {
        options = null;
        if (o == null)
        {
            options = new AmdViOptions();
            return 0;
        }

        if (o->Size != (uint)sizeof(NativeAmdViOptions) || (o->Flags & ~AmdViFlags) != 0 || o->Reserved != 0 ||
            (o->Interrupt == null && o->InterruptUser != null))
        {
            return -NativeErrno.EINVAL;
        }

        int rc = UnitEngineOptions(&o->Engine, o->FaultPlan, callersEngine, out EngineOptions? engine, out FaultPlan? plan);
        DeviceTlbSinkOptions? sink = null;
        rc = rc != 0 ? rc : ToSinkOptions(&o->DeviceTlb, callbacks, out sink);
        if (rc != 0)
        {
            return rc;
        }

        uint f = o->Flags;
        Action? interrupt = null;
        if (o->Interrupt != null)
        {
            delegate* unmanaged<void*, uint, ulong, uint, void> fn = o->Interrupt;
            nint user = (nint)o->InterruptUser;
            interrupt = () => Interrupt(callbacks, fn, user, InterruptAmdVi, 0, 0); // AMD-Vi's interrupt has no address or data
        }

        options = new AmdViOptions
        {
            GuestTranslation = (f & AmdViNoGuestTranslation) == 0,
            DeviceTlb = (f & AmdViNoDeviceTlb) == 0,
            InvalidateAll = (f & AmdViNoInvalidateAll) == 0,
            Interrupt = interrupt,
            Engine = engine,
            FaultPlan = plan,
            DeviceTlbSink = sink,
        };
        return 0;
    }

    /// <summary>struct fastinval_device_tlb_sink to <see cref="DeviceTlbSinkOptions"/> (null: none, as a zeroed struct or a
    /// version-1 options struct without it).</summary>
    private static int ToSinkOptions(NativeDeviceTlbSink* s, NativeUnitCallbacks callbacks, out DeviceTlbSinkOptions? options)
    {
        options = null;
        if (s == null || (s->Request == null && s->User == null && s->TimeoutNs == 0 && s->MaxOutstanding == 0 && s->Reserved == 0))
        {
            return 0;
        }

        uint max = s->MaxOutstanding == 0 ? 256 : s->MaxOutstanding;
        if (s->Request == null || s->Reserved != 0 || max is < 16 or > 65536 || (max & (max - 1)) != 0)
        {
            return -NativeErrno.EINVAL;
        }

        TimeSpan timeout = s->TimeoutNs switch
        {
            0 => DeviceTlbSinkOptions.DefaultTimeout,
            ulong.MaxValue => Timeout.InfiniteTimeSpan,
            ulong ns => TimeSpan.FromTicks((long)Math.Max(1, Math.Min(ns / 100, (ulong)TimeSpan.MaxValue.Ticks))),
        };
        var adapter = new NativeDeviceTlbSinkAdapter(s->Request, (nint)s->User, callbacks);
        callbacks.Sink = adapter;
        options = new DeviceTlbSinkOptions { Sink = adapter, Timeout = timeout, MaxOutstanding = (int)max };
        return 0;
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_device_tlb_complete")]
    public static int DeviceTlbComplete(ulong handle, ulong ticket, uint outcome)
    {
        try
        {
            if (outcome > (uint)DeviceTlbFault.CompletionError)
            {
                return -NativeErrno.EINVAL;
            }

            HandleKind kind = (HandleKind)(byte)(handle >> 24);
            if (kind is not (HandleKind.Vtd or HandleKind.Smmu or HandleKind.AmdVi))
            {
                return -NativeErrno.EBADF;
            }

            int rc = HandleTable.Enter(handle, kind, out NativeUnit? unit);
            if (rc != 0)
            {
                return rc;
            }

            try
            {
                using (unit!.Gate.EnterScope())
                {
                    IDeviceTlbCompletion? completion = unit.Callbacks.Sink?.Completion;
                    return completion is not null && completion.Complete(ticket, (DeviceTlbFault)outcome) ? 0 : -NativeErrno.ENOENT;
                }
            }
            finally
            {
                HandleTable.Leave(handle);
            }
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
    }

    private static void Interrupt(NativeUnitCallbacks callbacks, delegate* unmanaged<void*, uint, ulong, uint, void> fn, nint user,
        uint kind, ulong address, uint data)
    {
        callbacks.Enter();
        try
        {
            fn((void*)user, kind, address, data);
        }
        finally
        {
            callbacks.Leave();
        }
    }

    /// <summary>The engine part of a unit's options: with a caller's engine both must be unset (the engine has its own
    /// capacities and plan).</summary>
    private static int UnitEngineOptions(NativeEngineOptions* engineOptions, NativeFaultPlan* faultPlan, bool callersEngine,
        out EngineOptions? engine, out FaultPlan? plan)
    {
        engine = null;
        plan = null;
        if (callersEngine)
        {
            return engineOptions->Size != 0 || faultPlan != null ? -NativeErrno.EINVAL : 0;
        }

        int rc = engineOptions->Size == 0 ? 0 : ToEngineOptions(engineOptions, out engine);
        if (rc == 0 && faultPlan != null)
        {
            rc = ToFaultPlan(faultPlan, out plan);
        }

        return rc;
    }

    private static int ToNotifierFilter(NativeNotifierFilter* f, out NotifierFilter filter)
    {
        filter = default;
        if (f == null)
        {
            return 0;
        }

        if (f->Size != (uint)sizeof(NativeNotifierFilter) || (f->Scopes & ~(byte)NotifierScopes.All) != 0 ||
            (f->Flags & ~(FilterDomain | FilterAddressSpace | FilterSource | FilterRange)) != 0)
        {
            return -NativeErrno.EINVAL;
        }

        filter = new NotifierFilter
        {
            Scopes = (NotifierScopes)f->Scopes,
            DomainId = (f->Flags & FilterDomain) != 0 ? f->DomainId : null,
            AddressSpaceId = (f->Flags & FilterAddressSpace) != 0 ? f->AddressSpaceId : null,
            SourceId = (f->Flags & FilterSource) != 0 ? f->SourceId : null,
            Range = (f->Flags & FilterRange) != 0 ? (f->First, f->Last) : null,
        };
        return 0; // an address space that is no id or a reversed range: Subscribe throws ArgumentException, -EINVAL
    }
}
