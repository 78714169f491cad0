using System.Buffers.Binary;

using FastInval.Uapi;

namespace FastInval.Reference.Uapi;

/// <summary>What an object id of the reference's topology is, as far as IOMMU_HWPT_INVALIDATE cares.</summary>
public abstract record ReferenceTarget;

/// <summary>A VT-d S1 nested HWPT: its DID and the source ids of its attached ATS devices, in attach order.</summary>
public sealed record VtdNestedTarget(ushort Did, uint[] AtsSourceIds) : ReferenceTarget;

/// <summary>A selftest nested HWPT with its 4 IOTLB slots (changed in place).</summary>
public sealed record MockNestedTarget(uint[] Iotlb) : ReferenceTarget;

/// <summary>An SMMUv3 nested HWPT: no invalidation op of its own.</summary>
public sealed record SmmuNestedTarget : ReferenceTarget;

/// <summary>An SMMUv3 vIOMMU: its VMID and vSID → StreamID.</summary>
public sealed record SmmuViommuTarget(ushort Vmid, Dictionary<ulong, uint> StreamIds) : ReferenceTarget;

/// <summary>A selftest vIOMMU: virtual device id → that device's 4 cache slots (changed in place).</summary>
public sealed record MockViommuTarget(Dictionary<ulong, uint[]> DeviceCaches) : ReferenceTarget;

/// <summary>Any other live object (IOAS, paging HWPT, device, vDEVICE, selftest object).</summary>
public sealed record OtherTarget : ReferenceTarget;

/// <summary>
/// The reference model of IOMMU_HWPT_INVALIDATE, from spec/iommufd-uapi.md §2–§7 and DESIGN §2.1, written step by step
/// with its own copy rules, its own decoders (<see cref="ReferenceVtdS1"/>, <see cref="ReferenceSmmuCommands"/>) and
/// <see cref="ReferenceEngine"/>s. It shares no code with src/FastInval/Uapi; the public constants and value types are
/// vocabulary.
/// </summary>
public sealed class ReferenceIommufd
{
    private const ulong KmallocMax = 4UL * 1024 * 1024;

    /// <summary>Creates the model.</summary>
    public ReferenceIommufd(ReferenceUserMemory memory, ReferenceEngine vtd, ReferenceEngine smmu, bool hwErrorMode)
    {
        Memory = memory;
        Vtd = vtd;
        Smmu = smmu;
        HwErrorMode = hwErrorMode;
    }

    /// <summary>The user memory the array pointers resolve in.</summary>
    public ReferenceUserMemory Memory { get; }

    /// <summary>The VT-d IOMMU's caches.</summary>
    public ReferenceEngine Vtd { get; }

    /// <summary>The SMMUv3's caches.</summary>
    public ReferenceEngine Smmu { get; }

    /// <summary>True for the v8–v10 per-entry hw_error layouts.</summary>
    public bool HwErrorMode { get; }

    /// <summary>Live object ids and what they are; an id not in here is free (ENOENT).</summary>
    public Dictionary<uint, ReferenceTarget> Objects { get; } = [];

    /// <summary>ioctl(IOMMU_HWPT_INVALIDATE, arg): returns 0 or a negative errno and updates <paramref name="arg"/>, the user
    /// memory, the engines and the mock slots as the kernel would.</summary>
    public int Invalidate(byte[] arg)
    {
        // Generic dispatch: size first, then its minimum, then copy_struct_from_user into 32 bytes.
        if (arg.Length < 4)
        {
            return -Errno.EFAULT;
        }

        uint size = BinaryPrimitives.ReadUInt32LittleEndian(arg);
        if (size < 32)
        {
            return -Errno.EINVAL;
        }

        for (ulong i = 32; i < size; i++)
        {
            if (i >= (ulong)arg.Length)
            {
                return -Errno.EFAULT;
            }

            if (arg[i] != 0)
            {
                return -Errno.E2BIG;
            }
        }

        if (arg.Length < 32)
        {
            return -Errno.EFAULT;
        }

        uint hwptId = U32(arg, 4);
        ulong uptr = BinaryPrimitives.ReadUInt64LittleEndian(arg.AsSpan(8));
        uint type = U32(arg, 16);
        uint entryLen = U32(arg, 20);
        uint entryNum = U32(arg, 24);
        uint reserved = U32(arg, 28);
        int rc;
        uint handled;
        if (reserved != 0)
        {
            rc = -Errno.EOPNOTSUPP;
            handled = 0;
        }
        else if (entryNum != 0 && (uptr == 0 || entryLen == 0))
        {
            rc = -Errno.EINVAL;
            handled = 0;
        }
        else if (!Objects.TryGetValue(hwptId, out ReferenceTarget? target))
        {
            rc = -Errno.ENOENT;
            handled = 0;
        }
        else
        {
            (rc, handled) = target switch
            {
                VtdNestedTarget vtd => VtdDriver(vtd, uptr, type, entryLen, entryNum),
                MockNestedTarget mock => MockHwptDriver(mock, uptr, type, entryLen, entryNum),
                SmmuNestedTarget => (-Errno.EOPNOTSUPP, 0u),
                SmmuViommuTarget smmu => SmmuDriver(smmu, uptr, type, entryLen, entryNum),
                MockViommuTarget mockViommu => MockViommuDriver(mockViommu, uptr, type, entryLen, entryNum),
                _ => (-Errno.EINVAL, 0u),
            };
        }

        BinaryPrimitives.WriteUInt32LittleEndian(arg.AsSpan(24), handled);
        return rc;
    }

    private (int Rc, uint Handled) VtdDriver(VtdNestedTarget domain, ulong uptr, uint type, uint entryLen, uint entryNum)
    {
        if (type != InvalidateDataType.VtdS1)
        {
            return (-Errno.EINVAL, 0);
        }

        for (uint i = 0; i < entryNum; i++)
        {
            // The single-entry copy: the entry is exactly the kernel's 24 bytes.
            if (entryLen < 24 || entryLen > 24)
            {
                return (-Errno.EINVAL, i);
            }

            ulong entryAddress = unchecked(uptr + ((ulong)entryLen * i));
            byte[]? entry = Memory.Read(entryAddress, 24);
            if (entry is null)
            {
                return (-Errno.EFAULT, i);
            }

            ulong addr = BinaryPrimitives.ReadUInt64LittleEndian(entry);
            ulong npages = BinaryPrimitives.ReadUInt64LittleEndian(entry.AsSpan(8));
            uint flags = U32(entry, 16);
            uint last = U32(entry, 20);
            bool unknownFlag = (flags & ~1u) != 0;
            bool reservedSet = !HwErrorMode && last != 0;
            if (unknownFlag || reservedSet)
            {
                return (-Errno.EOPNOTSUPP, i);
            }

            if (addr % 4096 != 0)
            {
                return (-Errno.EINVAL, i);
            }

            if (npages == ulong.MaxValue && addr != 0)
            {
                return (-Errno.EINVAL, i);
            }

            uint hwError = 0;
            foreach (InvalidationDescriptor d in ReferenceVtdS1.Descriptors(domain.Did, domain.AtsSourceIds, addr, npages, leaf: (flags & 1) == 1))
            {
                InvalidationStatus status = Vtd.Execute(d);
                if (status == InvalidationStatus.TimedOut)
                {
                    hwError |= 1u << 1; // ITE
                }
                else if (status == InvalidationStatus.CompletionError)
                {
                    hwError |= 1u << 0; // ICE
                }
            }

            if (HwErrorMode)
            {
                byte[] value = new byte[4];
                BinaryPrimitives.WriteUInt32LittleEndian(value, hwError);
                Memory.Write(entryAddress + 20, value);
            }
        }

        return (0, entryNum);
    }

    private (int Rc, uint Handled) MockHwptDriver(MockNestedTarget domain, ulong uptr, uint type, uint entryLen, uint entryNum)
    {
        if (type != InvalidateDataType.Selftest)
        {
            return (-Errno.EINVAL, 0);
        }

        int size = HwErrorMode ? 16 : 8;
        for (uint i = 0; i < entryNum; i++)
        {
            if (entryLen != size)
            {
                return (-Errno.EINVAL, i);
            }

            ulong entryAddress = unchecked(uptr + ((ulong)entryLen * i));
            byte[]? entry = Memory.Read(entryAddress, size);
            if (entry is null)
            {
                return (-Errno.EFAULT, i);
            }

            uint flags = U32(entry, 0);
            uint iotlbId = U32(entry, 4);
            uint allowedFlags = HwErrorMode ? 3u : 1u;
            if ((flags & ~allowedFlags) != 0)
            {
                return (-Errno.EOPNOTSUPP, i);
            }

            if (HwErrorMode && U32(entry, 12) != 0)
            {
                return (-Errno.EOPNOTSUPP, i);
            }

            if (iotlbId > 3)
            {
                return (-Errno.EINVAL, i);
            }

            bool trigger = HwErrorMode && (flags & 2) != 0;
            if (!trigger)
            {
                if ((flags & 1) != 0)
                {
                    for (int s = 0; s < 4; s++)
                    {
                        domain.Iotlb[s] = 0;
                    }
                }
                else
                {
                    domain.Iotlb[iotlbId] = 0;
                }
            }

            if (HwErrorMode)
            {
                byte[] value = new byte[4];
                BinaryPrimitives.WriteUInt32LittleEndian(value, trigger ? 1u : 0u);
                Memory.Write(entryAddress + 8, value);
            }
        }

        return (0, entryNum);
    }

    private (int Rc, uint Handled) SmmuDriver(SmmuViommuTarget viommu, ulong uptr, uint type, uint entryLen, uint entryNum)
    {
        if ((ulong)entryNum * 16 > KmallocMax)
        {
            return (-Errno.ENOMEM, entryNum);
        }

        (int copyRc, List<byte[]>? commands) = CopyWholeArray(uptr, type, InvalidateDataType.ArmSmmuV3, entryLen, entryNum, 16);
        if (copyRc != 0)
        {
            return (copyRc, 0);
        }

        for (int i = 0; i < commands!.Count; i++)
        {
            ulong dw0 = BinaryPrimitives.ReadUInt64LittleEndian(commands[i]);
            ulong dw1 = BinaryPrimitives.ReadUInt64LittleEndian(commands[i].AsSpan(8));
            (ulong, ulong)? converted = ReferenceSmmuCommands.Convert(dw0, dw1, viommu.Vmid, viommu.StreamIds);
            if (converted is null)
            {
                return (-Errno.EIO, (uint)i);
            }

            InvalidationDescriptor? d = ReferenceSmmuCommands.Decode(converted.Value.Item1, converted.Value.Item2);
            if (d is null)
            {
                return (-Errno.EIO, (uint)i);
            }

            if (Smmu.Execute(d.Value) == InvalidationStatus.TimedOut)
            {
                return (-Errno.ETIMEDOUT, (uint)i);
            }
        }

        return (0, entryNum);
    }

    private (int Rc, uint Handled) MockViommuDriver(MockViommuTarget viommu, ulong uptr, uint type, uint entryLen, uint entryNum)
    {
        if (entryNum == 0 && type == InvalidateDataType.Selftest)
        {
            return (0, 0);
        }

        if ((ulong)entryNum * 12 > KmallocMax)
        {
            return (-Errno.ENOMEM, entryNum);
        }

        (int copyRc, List<byte[]>? entries) = CopyWholeArray(uptr, type, InvalidateDataType.Selftest, entryLen, entryNum, 12);
        if (copyRc != 0)
        {
            return (copyRc, 0);
        }

        for (int i = 0; i < entries!.Count; i++)
        {
            uint flags = U32(entries[i], 0);
            uint vdevId = U32(entries[i], 4);
            uint cacheId = U32(entries[i], 8);
            if ((flags & ~1u) != 0)
            {
                return (-Errno.EOPNOTSUPP, (uint)i);
            }

            if (cacheId > 3)
            {
                return (-Errno.EINVAL, (uint)i);
            }

            if (!viommu.DeviceCaches.TryGetValue(vdevId, out uint[]? cache))
            {
                return (-Errno.EINVAL, (uint)i);
            }

            if ((flags & 1) != 0)
            {
                for (int s = 0; s < 4; s++)
                {
                    cache[s] = 0;
                }
            }
            else
            {
                cache[cacheId] = 0;
            }
        }

        return (0, entryNum);
    }

    /// <summary>iommu_copy_struct_from_full_user_array: every entry, in order, zero tail then head, into kernel-size entries.</summary>
    private (int Rc, List<byte[]>? Entries) CopyWholeArray(ulong uptr, uint type, uint expectedType, uint entryLen, uint entryNum, int kernelSize)
    {
        if (type != expectedType || entryNum == 0)
        {
            return (-Errno.EINVAL, null);
        }

        var entries = new List<byte[]>();
        for (uint i = 0; i < entryNum; i++)
        {
            ulong entryAddress = unchecked(uptr + ((ulong)entryLen * i));
            for (ulong j = (ulong)kernelSize; j < entryLen; j++)
            {
                if (!Memory.TryReadByte(unchecked(entryAddress + j), out byte b))
                {
                    return (-Errno.EFAULT, null);
                }

                if (b != 0)
                {
                    return (-Errno.E2BIG, null);
                }
            }

            int head = (int)Math.Min(entryLen, (uint)kernelSize);
            byte[]? bytes = Memory.Read(entryAddress, head);
            if (bytes is null)
            {
                return (-Errno.EFAULT, null);
            }

            byte[] kernel = new byte[kernelSize];
            bytes.CopyTo(kernel, 0);
            entries.Add(kernel);
        }

        return (0, entries);
    }

    private static uint U32(byte[] bytes, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(offset));
}
