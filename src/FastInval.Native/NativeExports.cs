using System.Collections.Immutable;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using FastInval.Uapi;

namespace FastInval.Native;

/// <summary>
/// The C entry points of libfastinval.so (declared in fastinval.h). Every entry point catches every exception and answers
/// with a negative errno, so nothing but a status code crosses the boundary; handles go through <see cref="HandleTable"/>.
/// Pointers given to the engine calls are used directly (a NULL is -EFAULT); the iommufd ioctl reads and writes its
/// argument through <see cref="ProcessMemory"/>, so any bad pointer there is -EFAULT as in the kernel.
/// </summary>
internal static unsafe partial class NativeExports
{
    /// <summary>ABI version: major 16–23, minor 8–15, patch 0–7.</summary>
    public const uint AbiVersion = (0u << 16) | (1u << 8) | 0u;

    private const uint FlagSelftest = 1;
    private const uint FlagVtdHwError = 2;
    private const byte EntryGlobal = 1;
    private const byte EntryTable = 2;

    [UnmanagedCallersOnly(EntryPoint = "fastinval_abi_version")]
    public static uint Version() => AbiVersion;

    [UnmanagedCallersOnly(EntryPoint = "fastinval_version_string")]
    public static byte* VersionString() => (byte*)Unsafe.AsPointer(ref MemoryMarshal.GetReference("FastInval 0.1.0 (C ABI 0.1.0)\0"u8));

    [UnmanagedCallersOnly(EntryPoint = "fastinval_handle_count")]
    public static int HandleCount()
    {
        try
        {
            return HandleTable.Count;
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
    }

    // ---- Engine ----------------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "fastinval_engine_create")]
    public static int EngineCreate(NativeEngineOptions* options, ulong* handle)
    {
        try
        {
            if (handle == null)
            {
                return -NativeErrno.EFAULT;
            }

            *handle = 0;
            int rc = ToEngineOptions(options, out EngineOptions? engineOptions);
            if (rc != 0)
            {
                return rc;
            }

            var engine = new InvalidationEngine(engineOptions);
            ulong h = HandleTable.Add(engine, HandleKind.Engine);
            if (h == 0)
            {
                engine.Dispose();
                return -NativeErrno.EMFILE;
            }

            *handle = h;
            return 0;
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_engine_destroy")]
    public static int EngineDestroy(ulong handle)
    {
        try
        {
            int rc = RemoveEngineHandle(handle, out object? target); // -EBUSY while units run on it
            if (rc == 0)
            {
                ((InvalidationEngine)target!).Dispose();
            }

            return rc;
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_engine_counts")]
    public static int EngineCounts(ulong handle, NativeEngineCounts* counts)
    {
        if (counts == null)
        {
            return -NativeErrno.EFAULT;
        }

        int rc = HandleTable.Enter(handle, HandleKind.Engine, out InvalidationEngine? engine);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            *counts = new NativeEngineCounts
            {
                IotlbCount = (uint)engine!.Iotlb.Count,
                DeviceTlbCount = (uint)engine.DeviceTlb.Count,
                ConfigCount = (uint)engine.ConfigCache.Count,
                Kernel = (int)engine.Kernel,
                DeviceTlbInvalidations = engine.DeviceTlbInvalidations,
            };
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

    [UnmanagedCallersOnly(EntryPoint = "fastinval_engine_set_fault_plan")]
    public static int EngineSetFaultPlan(ulong handle, NativeFaultPlan* plan)
    {
        int rc = HandleTable.Enter(handle, HandleKind.Engine, out InvalidationEngine? engine);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            rc = ToFaultPlan(plan, out FaultPlan? faultPlan);
            if (rc == 0)
            {
                engine!.FaultPlan = faultPlan!;
            }

            return rc;
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

    [UnmanagedCallersOnly(EntryPoint = "fastinval_iotlb_fill")]
    public static int IotlbFill(ulong handle, NativeIotlbEntry* entry)
    {
        if (entry == null)
        {
            return -NativeErrno.EFAULT;
        }

        if (entry->Reserved != 0 || (entry->Flags & ~(EntryGlobal | EntryTable)) != 0)
        {
            return -NativeErrno.EINVAL;
        }

        int rc = HandleTable.Enter(handle, HandleKind.Engine, out InvalidationEngine? engine);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            var e = new TranslationEntry((TranslationStage)entry->Stage, entry->DomainId, entry->AddressSpaceId,
                entry->InputAddress, entry->OutputAddress, entry->SizeLog2, (AccessRights)entry->Rights,
                (Granule)entry->Granule, (entry->Flags & EntryGlobal) != 0, (entry->Flags & EntryTable) != 0);
            return (int)engine!.Iotlb.Fill(in e);
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

    [UnmanagedCallersOnly(EntryPoint = "fastinval_devtlb_fill")]
    public static int DeviceTlbFill(ulong handle, NativeDeviceTlbEntry* entry)
    {
        if (entry == null)
        {
            return -NativeErrno.EFAULT;
        }

        if (entry->Reserved != 0 || (entry->Flags & ~EntryGlobal) != 0)
        {
            return -NativeErrno.EINVAL;
        }

        int rc = HandleTable.Enter(handle, HandleKind.Engine, out InvalidationEngine? engine);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            var e = new DeviceTlbEntry(entry->SourceId, entry->Pasid, entry->InputAddress, entry->OutputAddress,
                entry->SizeLog2, (AccessRights)entry->Rights, (entry->Flags & EntryGlobal) != 0);
            return (int)engine!.DeviceTlb.Fill(in e);
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

    [UnmanagedCallersOnly(EntryPoint = "fastinval_config_fill")]
    public static int ConfigFill(ulong handle, NativeConfigEntry* entry)
    {
        if (entry == null)
        {
            return -NativeErrno.EFAULT;
        }

        if (entry->Reserved0 != 0 || entry->Reserved1 != 0)
        {
            return -NativeErrno.EINVAL;
        }

        int rc = HandleTable.Enter(handle, HandleKind.Engine, out InvalidationEngine? engine);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            var e = new ConfigEntry((ConfigKinds)entry->Kind, entry->SourceId, entry->AddressSpaceId, entry->DomainId, entry->Value);
            return (int)engine!.ConfigCache.Fill(in e);
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

    [UnmanagedCallersOnly(EntryPoint = "fastinval_iotlb_lookup")]
    public static int IotlbLookup(ulong handle, byte stage, ushort domainId, uint addressSpaceId, ulong address, NativeTranslation* result)
    {
        if (result == null)
        {
            return -NativeErrno.EFAULT;
        }

        int rc = HandleTable.Enter(handle, HandleKind.Engine, out InvalidationEngine? engine);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            bool hit = engine!.Iotlb.TryLookupPinned((TranslationStage)stage, domainId, addressSpaceId, address, out Translation t); // the handle pins the engine
            WriteTranslation(hit, in t, result);
            return hit ? 1 : 0;
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

    [UnmanagedCallersOnly(EntryPoint = "fastinval_devtlb_lookup")]
    public static int DeviceTlbLookup(ulong handle, uint sourceId, uint pasid, ulong address, NativeTranslation* result)
    {
        if (result == null)
        {
            return -NativeErrno.EFAULT;
        }

        int rc = HandleTable.Enter(handle, HandleKind.Engine, out InvalidationEngine? engine);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            bool hit = engine!.DeviceTlb.TryLookupPinned(sourceId, pasid, address, out Translation t); // the handle pins the engine
            WriteTranslation(hit, in t, result);
            return hit ? 1 : 0;
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

    [UnmanagedCallersOnly(EntryPoint = "fastinval_config_lookup")]
    public static int ConfigLookup(ulong handle, byte kind, uint sourceId, uint addressSpaceId, NativeConfigEntry* result)
    {
        if (result == null)
        {
            return -NativeErrno.EFAULT;
        }

        int rc = HandleTable.Enter(handle, HandleKind.Engine, out InvalidationEngine? engine);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            bool hit = engine!.ConfigCache.TryLookup((ConfigKinds)kind, sourceId, addressSpaceId, out ConfigEntry c);
            *result = hit
                ? new NativeConfigEntry { Value = c.Value, SourceId = c.SourceId, AddressSpaceId = c.AddressSpaceId, DomainId = c.DomainId, Kind = (byte)c.Kind }
                : default;
            return hit ? 1 : 0;
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

    [UnmanagedCallersOnly(EntryPoint = "fastinval_execute")]
    public static int Execute(ulong handle, InvalidationDescriptor* batch, nuint count, InvalidationStatus* statuses, NativeBatchResult* result)
    {
        if (count > int.MaxValue)
        {
            return -NativeErrno.EINVAL;
        }

        if (count != 0 && (batch == null || statuses == null))
        {
            return -NativeErrno.EFAULT;
        }

        int rc = HandleTable.Enter(handle, HandleKind.Engine, out InvalidationEngine? engine);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            BatchResult r = engine!.Execute(new ReadOnlySpan<InvalidationDescriptor>(batch, (int)count), new Span<InvalidationStatus>(statuses, (int)count));
            if (result != null)
            {
                *result = new NativeBatchResult
                {
                    Ok = (uint)r.Ok,
                    TimedOut = (uint)r.TimedOut,
                    CompletionErrors = (uint)r.CompletionErrors,
                    Invalid = (uint)r.Invalid,
                    FirstFailureIndex = r.FirstFailureIndex,
                };
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

    // ---- iommufd ---------------------------------------------------------------------------------------

    [UnmanagedCallersOnly(EntryPoint = "fastinval_iommufd_create")]
    public static int IommufdCreate(NativeIommufdOptions* options, ulong* handle)
    {
        try
        {
            if (handle == null)
            {
                return -NativeErrno.EFAULT;
            }

            *handle = 0;
            uint flags = FlagSelftest;
            EngineOptions? engineOptions = null;
            if (options != null)
            {
                if (options->Size != (uint)sizeof(NativeIommufdOptions) || (options->Flags & ~(FlagSelftest | FlagVtdHwError)) != 0)
                {
                    return -NativeErrno.EINVAL;
                }

                flags = options->Flags;
                if (options->Engine.Size != 0)
                {
                    int rc = ToEngineOptions(&options->Engine, out engineOptions);
                    if (rc != 0)
                    {
                        return rc;
                    }
                }
            }

            int errno = Marshal.GetLastSystemError();
            ProcessMemory memory = ProcessMemory.Current;
            Marshal.SetLastSystemError(errno);
            var fd = new Iommufd(memory, new IommufdOptions
            {
                Selftest = (flags & FlagSelftest) != 0,
                VtdErrorReporting = (flags & FlagVtdHwError) != 0 ? VtdErrorReporting.PerEntryHwError : VtdErrorReporting.Mainline,
                EngineOptions = engineOptions,
            });
            ulong h = HandleTable.Add(fd, HandleKind.Iommufd);
            if (h == 0)
            {
                fd.Dispose();
                return -NativeErrno.EMFILE;
            }

            *handle = h;
            return 0;
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_iommufd_destroy")]
    public static int IommufdDestroy(ulong handle)
    {
        try
        {
            int rc = HandleTable.Remove(handle, HandleKind.Iommufd, out object? target);
            if (rc == 0)
            {
                ((Iommufd)target!).Dispose();
            }

            return rc;
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_iommufd_ioctl")]
    public static int IommufdIoctl(ulong handle, uint request, void* arg)
    {
        int rc = HandleTable.Enter(handle, HandleKind.Iommufd, out Iommufd? fd);
        if (rc != 0)
        {
            return rc;
        }

        int errno = Marshal.GetLastSystemError(); // ioctl(2) leaves errno alone on success: so does this call
        try
        {
            return fd!.IoctlAt(request, (ulong)arg);
        }
        catch (Exception e)
        {
            return NativeErrno.FromException(e);
        }
        finally
        {
            HandleTable.Leave(handle);
            Marshal.SetLastSystemError(errno);
        }
    }

    [UnmanagedCallersOnly(EntryPoint = "fastinval_iommufd_add_device")]
    public static int IommufdAddDevice(ulong handle, uint kind, uint streamId, int ats, uint* deviceId)
    {
        if (deviceId == null)
        {
            return -NativeErrno.EFAULT;
        }

        int rc = HandleTable.Enter(handle, HandleKind.Iommufd, out Iommufd? fd);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            *deviceId = 0;
            if (kind > (uint)IommuKind.ArmSmmuV3 || (kind == (uint)IommuKind.IntelVtd && streamId > 0xFFFF))
            {
                return -NativeErrno.EINVAL;
            }

            *deviceId = fd!.AddDevice((IommuKind)kind, streamId, ats != 0);
            return 0;
        }
        catch (ArgumentException)
        {
            return -NativeErrno.EEXIST; // the only argument error left: the stream id is already bound
        }
        catch (InvalidOperationException e) when (e is not ObjectDisposedException)
        {
            return -NativeErrno.ENOSPC; // the object id space is exhausted
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

    [UnmanagedCallersOnly(EntryPoint = "fastinval_iommufd_attach_device")]
    public static int IommufdAttachDevice(ulong handle, uint deviceId, uint ptId) => DeviceOp(handle, deviceId, ptId, 0);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_iommufd_detach_device")]
    public static int IommufdDetachDevice(ulong handle, uint deviceId) => DeviceOp(handle, deviceId, 0, 1);

    [UnmanagedCallersOnly(EntryPoint = "fastinval_iommufd_remove_device")]
    public static int IommufdRemoveDevice(ulong handle, uint deviceId) => DeviceOp(handle, deviceId, 0, 2);

    private static int DeviceOp(ulong handle, uint deviceId, uint ptId, int op)
    {
        int rc = HandleTable.Enter(handle, HandleKind.Iommufd, out Iommufd? fd);
        if (rc != 0)
        {
            return rc;
        }

        try
        {
            return op switch
            {
                0 => fd!.AttachDevice(deviceId, ptId),
                1 => fd!.DetachDevice(deviceId),
                _ => fd!.RemoveDevice(deviceId),
            };
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

    // ---- Conversions -----------------------------------------------------------------------------------

    private static int ToEngineOptions(NativeEngineOptions* options, out EngineOptions? engineOptions)
    {
        engineOptions = null;
        if (options == null)
        {
            return 0;
        }

        if (options->Size != (uint)sizeof(NativeEngineOptions) || options->Reserved != 0 ||
            options->Kernel < -1 || options->Kernel > (int)TagScanKernel.Vector512 ||
            options->IotlbCapacity > int.MaxValue || options->DeviceTlbCapacity > int.MaxValue || options->ConfigCacheCapacity > int.MaxValue)
        {
            return -NativeErrno.EINVAL;
        }

        var defaults = new EngineOptions();
        engineOptions = new EngineOptions
        {
            IotlbCapacity = options->IotlbCapacity == 0 ? defaults.IotlbCapacity : (int)options->IotlbCapacity,
            DeviceTlbCapacity = options->DeviceTlbCapacity == 0 ? defaults.DeviceTlbCapacity : (int)options->DeviceTlbCapacity,
            ConfigCacheCapacity = options->ConfigCacheCapacity == 0 ? defaults.ConfigCacheCapacity : (int)options->ConfigCacheCapacity,
            Kernel = options->Kernel < 0 ? TagScanKernels.Best : (TagScanKernel)options->Kernel,
        };
        return 0;
    }

    private static int ToFaultPlan(NativeFaultPlan* plan, out FaultPlan? faultPlan)
    {
        faultPlan = FaultPlan.None;
        if (plan == null)
        {
            return 0;
        }

        if (plan->Size != (uint)sizeof(NativeFaultPlan) || plan->Reserved != 0 || plan->Reserved2 != 0 ||
            plan->TimeoutPerMillion > 1_000_000 || plan->CompletionErrorPerMillion > 1_000_000)
        {
            return -NativeErrno.EINVAL;
        }

        if ((plan->TimeoutSourceIdCount != 0 && plan->TimeoutSourceIds == null) ||
            (plan->TimeoutOrdinalCount != 0 && plan->TimeoutOrdinals == null) ||
            (plan->CompletionErrorOrdinalCount != 0 && plan->CompletionErrorOrdinals == null))
        {
            return -NativeErrno.EFAULT;
        }

        faultPlan = new FaultPlan
        {
            Seed = plan->Seed,
            TimeoutPerMillion = plan->TimeoutPerMillion,
            CompletionErrorPerMillion = plan->CompletionErrorPerMillion,
            TimeoutSourceIds = ImmutableArray.Create(new ReadOnlySpan<uint>(plan->TimeoutSourceIds, (int)plan->TimeoutSourceIdCount)),
            TimeoutOrdinals = ImmutableArray.Create(new ReadOnlySpan<ulong>(plan->TimeoutOrdinals, (int)plan->TimeoutOrdinalCount)),
            CompletionErrorOrdinals = ImmutableArray.Create(new ReadOnlySpan<ulong>(plan->CompletionErrorOrdinals, (int)plan->CompletionErrorOrdinalCount)),
        };
        return 0;
    }

    /// <summary>Writes a lookup's result field by field straight into the caller's struct (a struct built on the stack
    /// and copied would be read back in 16-byte pieces from 8-byte stores: a store-forwarding stall on every lookup).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WriteTranslation(bool hit, in Translation t, NativeTranslation* result)
    {
        if (hit)
        {
            result->OutputAddress = t.OutputAddress;
            result->InputBase = t.InputBase;
            result->Rights = (ushort)t.Rights;
            result->SizeLog2 = t.SizeLog2;
            result->Global = t.Global ? (byte)1 : (byte)0;
            result->Reserved = 0;
        }
        else
        {
            *result = default;
        }
    }
}
