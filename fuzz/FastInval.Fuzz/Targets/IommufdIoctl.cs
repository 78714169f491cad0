using System.Buffers.Binary;
using FastInval.Uapi;

namespace FastInval.Fuzz.Targets;

/// <summary>
/// <see cref="Iommufd.Ioctl"/> on any request, argument and user pointer: it never throws, answers 0 or one of the
/// errnos the commands use, keeps every reference count equal to what the object links imply, and a call it rejects
/// changes nothing it should not (the object table and its argument for every command; the caches unless it is an
/// IOMMU_HWPT_INVALIDATE that handled entries before failing). Only IOMMU_HWPT_INVALIDATE ever touches the caches.
/// </summary>
/// <remarks>
/// The file starts populated: an IOAS (1), a VT-d device with ATS and a nest parent with a VT-d S1 nested HWPT it is
/// attached to, an SMMUv3 device, nest parent, vIOMMU and vDEVICE (vSID 1), a mock device with a nest parent, a mock nested
/// HWPT, a mock vIOMMU and its vDEVICE (0x99); a few entries sit in every cache. Ids run from 1 to about 20.
/// Input layout (missing bytes read as zero):
/// <code>
/// [0]       bit 0: PerEntryHwError reporting
/// [1..96]   a 96-byte user buffer, mapped (what data_uptr patches point into)
/// then, up to 16 times:
///   [0]     request: index into 12 request codes (the implemented ones, holes, outside the table, wrong bits)
///   [1]     argument length = byte % 81
///   [2]     size field: 0 as given, 1 the command's struct size, 2 its minimum (byte % 3)
///   [3]     patch count = byte % 6, then per patch: [offset index] [value index] (u32 fields at 4..64;
///           value index 0 writes the buffer's address as a u64)
///   [..]    the argument bytes
/// </code>
/// </remarks>
public sealed class IommufdIoctl : IFuzzer
{
    private static readonly uint[] Requests =
    [
        IommufdRequest.Destroy, IommufdRequest.IoasAlloc, IommufdRequest.HwptAlloc, IommufdRequest.HwptInvalidate,
        IommufdRequest.ViommuAlloc, IommufdRequest.VdeviceAlloc, IommufdRequest.TestCmd, 0x3B82, 0x3B7F, 0x3B95, 0xC0203B8D, 0x4B8D,
    ];

    private static readonly int[] Offsets = [4, 8, 12, 16, 20, 24, 28, 32, 40, 64];

    private static readonly uint[] Values =
    [
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 24, 32, 40, 48, 68, 72, 0x99,
        HwptDataType.Selftest, HwptDataType.VtdS1, HwptDataType.ArmSmmuV3, InvalidateDataType.Selftest, 0xFFFF_FFFF,
    ];

    private static readonly int[] KnownErrnos =
    [
        0, -Errno.ENOENT, -Errno.EIO, -Errno.E2BIG, -Errno.ENOMEM, -Errno.EFAULT, -Errno.EBUSY, -Errno.EEXIST, -Errno.EINVAL,
        -Errno.ENOTTY, -Errno.ENOSPC, -Errno.EOPNOTSUPP, -Errno.ETIMEDOUT,
    ];

    public void FuzzTarget(ReadOnlySpan<byte> bytes)
    {
        var input = new FuzzInput(bytes);
        bool hwError = (input.Byte() & 1) != 0;
        var memory = new UserMemory();
        using var fd = new Iommufd(memory, new IommufdOptions
        {
            Selftest = true,
            VtdErrorReporting = hwError ? VtdErrorReporting.PerEntryHwError : VtdErrorReporting.Mainline,
            EngineOptions = new EngineOptions
            {
                IotlbCapacity = 64,
                DeviceTlbCapacity = 64,
                ConfigCacheCapacity = 64,
                FaultPlan = new FaultPlan { TimeoutPerMillion = 200_000, CompletionErrorPerMillion = 200_000, Seed = 11 },
            },
        });
        byte[] buffer = new byte[96];
        input.Bytes(buffer);
        ulong bufferAddress = memory.Map(buffer);
        Populate(fd, memory);

        Span<(int Offset, int Value)> patchBuffer = stackalloc (int, int)[5];
        for (int call = 0; call < 16 && input.HasMore; call++)
        {
            uint request = input.Pick<uint>(Requests);
            byte[] arg = new byte[input.Byte() % 81];
            int sizeMode = input.Byte() % 3;
            int patches = input.Byte() % 6;
            Span<(int Offset, int Value)> patch = patchBuffer[..patches];
            for (int p = 0; p < patches; p++)
            {
                patch[p] = (input.Pick<int>(Offsets), input.Byte() % (Values.Length + 1));
            }

            input.Bytes(arg);
            if (sizeMode != 0 && arg.Length >= 4)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(arg, sizeMode == 1 ? KernelSize(request) : MinimumSize(request));
            }

            foreach ((int offset, int value) in patch)
            {
                if (value == 0 && offset + 8 <= arg.Length)
                {
                    BinaryPrimitives.WriteUInt64LittleEndian(arg.AsSpan(offset), bufferAddress);
                }
                else if (value != 0 && offset + 4 <= arg.Length)
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(arg.AsSpan(offset), Values[value - 1]);
                }
            }

            Check(fd, request, arg, call);
        }
    }

    private static void Check(Iommufd fd, uint request, byte[] arg, int call)
    {
        byte[] argBefore = [.. arg];
        string table = fd.DescribeTable();
        string caches = Caches(fd);
        int rc = fd.Ioctl(request, arg);
        string where = $"call {call}: ioctl 0x{request:x} → {Errno.Name(rc)}";
        if (Array.IndexOf(KnownErrnos, rc) < 0)
        {
            throw new OracleException($"{where}: not an errno of these commands");
        }

        if (fd.CheckReferenceCounts() is { } refs)
        {
            throw new OracleException($"{where}: {refs}");
        }

        bool invalidate = request == IommufdRequest.HwptInvalidate && arg.Length >= 32 && BinaryPrimitives.ReadUInt32LittleEndian(argBefore) >= 32;
        if (!invalidate && Caches(fd) != caches)
        {
            throw new OracleException($"{where}: a command other than HWPT_INVALIDATE changed the caches");
        }

        if (rc == 0)
        {
            return;
        }

        for (int b = 0; b < arg.Length; b++)
        {
            if (arg[b] != argBefore[b] && !(invalidate && b is >= 24 and < 28))
            {
                throw new OracleException($"{where}: a rejected call changed argument byte {b}");
            }
        }

        bool mayHaveRun = invalidate && rc != -Errno.ENOMEM && BinaryPrimitives.ReadUInt32LittleEndian(arg.AsSpan(24)) != 0;
        if (!mayHaveRun && (fd.DescribeTable() != table || Caches(fd) != caches))
        {
            throw new OracleException($"{where}: a rejected call that handled nothing changed the objects or the caches");
        }
    }

    private static string Caches(Iommufd fd)
    {
        InvalidationEngine vtd = fd.Engine(IommuKind.IntelVtd), smmu = fd.Engine(IommuKind.ArmSmmuV3);
        return $"{vtd.Iotlb.Count}/{vtd.DeviceTlb.Count}/{vtd.DeviceTlbInvalidations}/{smmu.Iotlb.Count}/{smmu.DeviceTlb.Count}/" +
               $"{smmu.ConfigCache.Count}/{smmu.DeviceTlbInvalidations}";
    }

    private static uint KernelSize(uint request) => request switch
    {
        IommufdRequest.Destroy => 8,
        IommufdRequest.IoasAlloc => 12,
        IommufdRequest.HwptAlloc => 48,
        IommufdRequest.HwptInvalidate => 32,
        IommufdRequest.ViommuAlloc => 40,
        IommufdRequest.VdeviceAlloc => 24,
        _ => 72,
    };

    private static uint MinimumSize(uint request) => request switch
    {
        IommufdRequest.Destroy => 8,
        IommufdRequest.IoasAlloc => 12,
        IommufdRequest.HwptInvalidate => 32,
        IommufdRequest.TestCmd => 68,
        _ => 24,
    };

    /// <summary>The starting objects (see the remarks) and a few cached entries.</summary>
    private static void Populate(Iommufd fd, UserMemory memory)
    {
        uint ioas = Alloc(fd, IommufdRequest.IoasAlloc, Cmd(12), 8);
        uint intel = fd.AddDevice(IommuKind.IntelVtd, 0x10, ats: true);
        uint intelParent = Alloc(fd, IommufdRequest.HwptAlloc, Cmd(48, (4, 1), (8, intel), (12, ioas)), 16);
        byte[] s1 = new byte[24];
        s1[16] = 48;
        uint vtd = Alloc(fd, IommufdRequest.HwptAlloc, Cmd(48, (8, intel), (12, intelParent), (24, HwptDataType.VtdS1), (28, 24), (32, (uint)memory.Map(s1))), 16);
        Must(fd.AttachDevice(intel, vtd));
        uint arm = fd.AddDevice(IommuKind.ArmSmmuV3, 0x100, ats: true);
        uint armParent = Alloc(fd, IommufdRequest.HwptAlloc, Cmd(48, (4, 1), (8, arm), (12, ioas)), 16);
        uint viommu = Alloc(fd, IommufdRequest.ViommuAlloc, Cmd(40, (8, ViommuType.ArmSmmuV3), (12, arm), (16, armParent)), 20);
        Alloc(fd, IommufdRequest.VdeviceAlloc, Cmd(24, (4, viommu), (8, arm), (16, 1)), 12);
        uint mockDevice = Alloc(fd, IommufdRequest.TestCmd, Cmd(72, (4, MockSelftest.OpMockDomain), (8, ioas)), 24);
        uint mockParent = Alloc(fd, IommufdRequest.HwptAlloc, Cmd(48, (4, 1), (8, mockDevice), (12, ioas)), 16);
        byte[] iotlb = [0xef, 0xbe, 0xad, 0x0b];
        Alloc(fd, IommufdRequest.HwptAlloc, Cmd(48, (8, mockDevice), (12, mockParent), (24, HwptDataType.Selftest), (28, 4), (32, (uint)memory.Map(iotlb))), 16);
        uint mockViommu = Alloc(fd, IommufdRequest.ViommuAlloc, Cmd(40, (8, ViommuType.Selftest), (12, mockDevice), (16, mockParent)), 20);
        Alloc(fd, IommufdRequest.VdeviceAlloc, Cmd(24, (4, mockViommu), (8, mockDevice), (16, 0x99)), 12);
        fd.TryGetDomainId(vtd, out ushort did);
        fd.TryGetDomainId(viommu, out ushort vmid);
        InvalidationEngine vtdEngine = fd.Engine(IommuKind.IntelVtd), smmu = fd.Engine(IommuKind.ArmSmmuV3);
        for (ulong p = 0; p < 8; p++)
        {
            vtdEngine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Nested, did, 0, p << 12, p << 12));
            vtdEngine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, AddressSpace.None, p << 12, p << 12));
            smmu.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, vmid, 1, p << 12, p << 12));
            smmu.DeviceTlb.Fill(new DeviceTlbEntry(0x100, AddressSpace.None, p << 12, p << 12));
            smmu.ConfigCache.Fill(new ConfigEntry(ConfigKinds.ContextDescriptor, 0x100, (uint)p, vmid, p));
        }
    }

    private static byte[] Cmd(int size, params (int Offset, uint Value)[] fields)
    {
        byte[] a = new byte[size];
        BinaryPrimitives.WriteUInt32LittleEndian(a, (uint)size);
        foreach ((int offset, uint value) in fields)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(a.AsSpan(offset), value);
        }

        return a;
    }

    private static uint Alloc(Iommufd fd, uint request, byte[] cmd, int outOffset)
    {
        Must(fd.Ioctl(request, cmd));
        return BinaryPrimitives.ReadUInt32LittleEndian(cmd.AsSpan(outOffset));
    }

    private static void Must(int rc)
    {
        if (rc != 0)
        {
            throw new InvalidOperationException($"setup failed: {Errno.Name(rc)}");
        }
    }
}
