using System.Buffers;
using System.Buffers.Binary;
using FastInval.Smmu;
using FastInval.Uapi;
using FastInval.Vtd;

namespace FastInval.Host;

/// <summary>The 1.1 requests: CREATE of VT-d, SMMUv3 and iommufd units over shared memory, REG_READ, REG_WRITE and
/// IOMMUFD_IOCTL (docs/protocol.md §4.2, §4.9–§4.12, §6).</summary>
internal sealed partial class Session
{
    private const uint VtdFlagsKnown = 0x3FF;
    private const uint VtdLimitsGiven = 1u << 9;
    private const uint SmmuFlagsKnown = 0xFFF;
    private const uint SmmuSizesGiven = 1u << 11;
    private const uint IommufdFlagsKnown = 0x3;

    private readonly record struct Region(ulong Base, ulong Length, ulong FileOffset);

    private (ErrorCode, uint) CreateShared(in FrameHeader header, UnitKind kind, ReadOnlySpan<byte> body, IBufferWriter<byte> output)
    {
        if (BinaryPrimitives.ReadUInt16LittleEndian(body[2..]) != 0)
        {
            return (ErrorCode.InvalidArgument, 2);
        }

        Span<int> capacities = [0, 0, 0];
        (ErrorCode code, uint detail) = ReadCapacities(body, capacities);
        if (code != ErrorCode.Ok)
        {
            return (code, detail);
        }

        const int O = ProtocolConstants.CreateRequestSize; // options start here in the payload
        ReadOnlySpan<byte> options = body[O..];
        uint fdCount = BinaryPrimitives.ReadUInt32LittleEndian(body[4..]);
        if (options.Length < ProtocolConstants.UnitOptionsPrefixSize)
        {
            return (ErrorCode.Malformed, 0);
        }

        uint regionCount = BinaryPrimitives.ReadUInt32LittleEndian(options);
        uint flags = BinaryPrimitives.ReadUInt32LittleEndian(options[4..]);
        uint deviceCount = kind == UnitKind.Iommufd ? BinaryPrimitives.ReadUInt32LittleEndian(options[8..]) : 0;
        ulong expected = ProtocolConstants.UnitOptionsPrefixSize + ((ulong)regionCount * ProtocolConstants.RegionSize) +
            ((ulong)deviceCount * ProtocolConstants.IommufdDeviceSize);
        if ((ulong)options.Length != expected)
        {
            return (ErrorCode.Malformed, 0);
        }

        uint minRegions = kind == UnitKind.Iommufd ? 0u : 1u;
        if (regionCount < minRegions || regionCount > ProtocolConstants.MaxRegions)
        {
            return (ErrorCode.InvalidArgument, O);
        }

        if (fdCount != regionCount)
        {
            return (ErrorCode.InvalidArgument, 4);
        }

        var engine = new EngineOptions { IotlbCapacity = capacities[0], DeviceTlbCapacity = capacities[1], ConfigCacheCapacity = capacities[2] };
        VtdOptions? vtd = null;
        SmmuOptions? smmu = null;
        IommufdOptions? iommufd = null;
        IommuKind engineKind = IommuKind.IntelVtd;
        int oas = 64;
        switch (kind)
        {
            case UnitKind.Vtd:
                (code, detail) = ReadVtdOptions(options, flags, engine, out vtd);
                break;
            case UnitKind.SmmuV3:
                (code, detail) = ReadSmmuOptions(options, flags, engine, out smmu);
                oas = smmu?.OutputAddressBits ?? 64;
                break;
            default:
                (code, detail) = ReadIommufdOptions(options, flags, deviceCount, engine, out iommufd, out engineKind);
                break;
        }

        if (code != ErrorCode.Ok)
        {
            return (code, detail);
        }

        // Regions: page-aligned, non-empty, not wrapping, and (guest memory) not overlapping one another.
        Span<Region> regions = stackalloc Region[ProtocolConstants.MaxRegions];
        for (int i = 0; i < (int)regionCount; i++)
        {
            int at = ProtocolConstants.UnitOptionsPrefixSize + (i * ProtocolConstants.RegionSize);
            var r = new Region(BinaryPrimitives.ReadUInt64LittleEndian(options[at..]), BinaryPrimitives.ReadUInt64LittleEndian(options[(at + 8)..]),
                BinaryPrimitives.ReadUInt64LittleEndian(options[(at + 16)..]));
            if (kind == UnitKind.Iommufd ? r.Base != 0 : (r.Base & 0xFFF) != 0 || r.Base + (r.Length - 1) < r.Base)
            {
                return (ErrorCode.InvalidArgument, (uint)(O + at));
            }

            ulong maxLength = kind == UnitKind.Iommufd ? int.MaxValue & ~0xFFFUL : long.MaxValue;
            if (r.Length == 0 || (r.Length & 0xFFF) != 0 || r.Length > maxLength)
            {
                return (ErrorCode.InvalidArgument, (uint)(O + at + 8));
            }

            if ((r.FileOffset & 0xFFF) != 0 || r.FileOffset > long.MaxValue - r.Length)
            {
                return (ErrorCode.InvalidArgument, (uint)(O + at + 16));
            }

            for (int j = 0; kind != UnitKind.Iommufd && j < i; j++)
            {
                if (r.Base <= regions[j].Base + (regions[j].Length - 1) && regions[j].Base <= r.Base + (r.Length - 1))
                {
                    return (ErrorCode.Overlap, (uint)i);
                }
            }

            regions[i] = r;
        }

        if (_units.Count >= _core.Options.MaxUnitsPerConnection)
        {
            return (ErrorCode.UnitLimit, (uint)_core.Options.MaxUnitsPerConnection);
        }

        // The descriptors: exactly fd_count of them must have come with this frame's first byte.
        Span<int> fds = stackalloc int[ProtocolConstants.MaxRegions];
        fds.Fill(-1);
        if (regionCount > 0 && (_inbox is null || !_inbox.TryClaim(_frameStart, (int)regionCount, fds)))
        {
            return (ErrorCode.BadFd, uint.MaxValue);
        }

        var mappings = new SharedMapping[regionCount];
        int mapped = 0;
        try
        {
            for (int i = 0; i < (int)regionCount; i++)
            {
                long size = UnixFds.FileSize(fds[i]);
                if (size < 0)
                {
                    return (ErrorCode.BadFd, (uint)i);
                }

                if ((ulong)size < regions[i].FileOffset + regions[i].Length)
                {
                    return (ErrorCode.ShortFile, (uint)i);
                }

                nint address = UnixFds.MapShared(fds[i], regions[i].Length, regions[i].FileOffset, out _);
                if (address == 0)
                {
                    return (ErrorCode.BadFd, (uint)i);
                }

                mappings[i] = new SharedMapping(address, regions[i].Length)
                {
                    GuestBase = regions[i].Base,
                    FileOffset = regions[i].FileOffset,
                    FileSize = (ulong)size,
                    TraceRegion = _recorder is { FrameRegionBase: >= 0 } r ? r.FrameRegionBase + i : -1,
                };
                mapped++;
            }

            Unit unit = Build(kind, vtd, smmu, iommufd, engineKind, oas, mappings, options, deviceCount);
            mapped = 0; // the unit owns the mappings now
            _units.Add(unit.Id, unit);
            _core.UnitCreated();
            int extra = kind == UnitKind.Iommufd ? (8 * (int)regionCount) + (4 * (int)deviceCount) : 0;
            Span<byte> reply = BeginReply(output, in header, unit.Id, ProtocolConstants.CreateReplySize + extra, out int total);
            BinaryPrimitives.WriteUInt32LittleEndian(reply, unit.Id);
            if (kind == UnitKind.Iommufd)
            {
                for (int i = 0; i < (int)regionCount; i++)
                {
                    BinaryPrimitives.WriteUInt64LittleEndian(reply[(8 + (8 * i))..], mappings[i].GuestBase);
                }

                Span<uint> ids = _deviceIds.AsSpan(0, (int)deviceCount);
                for (int i = 0; i < ids.Length; i++)
                {
                    BinaryPrimitives.WriteUInt32LittleEndian(reply[(8 + (8 * (int)regionCount) + (4 * i))..], ids[i]);
                }
            }

            output.Advance(total);
            _recorder?.Mapped(unit.Id, unit.Mappings); // the initial contents, after the reply (docs/traces.md §4)
            return (ErrorCode.Ok, 0);
        }
        finally
        {
            for (int i = 0; i < mapped; i++)
            {
                mappings[i].Dispose();
            }

            for (int i = 0; i < (int)regionCount; i++)
            {
                UnixFds.Close(fds[i]); // a mapping keeps its file; the descriptor is not needed any more
            }
        }
    }

    private readonly uint[] _deviceIds = new uint[ProtocolConstants.MaxIommufdDevices];

    private Unit Build(UnitKind kind, VtdOptions? vtd, SmmuOptions? smmu, IommufdOptions? iommufd, IommuKind engineKind, int oas,
        SharedMapping[] mappings, ReadOnlySpan<byte> options, uint deviceCount)
    {
        uint id = _core.NextUnitId();
        if (kind == UnitKind.Iommufd)
        {
            var user = new UserMemory();
            var unit = new Unit(id, kind) { UserMemory = user, Requests = 1 };
            foreach (SharedMapping m in mappings)
            {
                m.GuestBase = user.Map(new NativeMemoryManager(m.Address, (int)m.Length).Memory);
            }

            unit.Own(mappings);
            var context = new Iommufd(user, iommufd);
            unit.Attach(context, engineKind);
            int at = ProtocolConstants.UnitOptionsPrefixSize + (mappings.Length * ProtocolConstants.RegionSize);
            for (int i = 0; i < (int)deviceCount; i++, at += ProtocolConstants.IommufdDeviceSize)
            {
                var iommu = options[at] == 1 ? IommuKind.IntelVtd : IommuKind.ArmSmmuV3;
                _deviceIds[i] = context.AddDevice(iommu, BinaryPrimitives.ReadUInt32LittleEndian(options[(at + 4)..]), (options[at + 1] & 1) != 0);
            }

            return unit;
        }

        var memory = new NativeGuestMemory();
        foreach (SharedMapping m in mappings)
        {
            memory.Map(m.GuestBase, m.Address, m.Length);
        }

        var shared = new Unit(id, kind) { GuestMemory = memory, Requests = 1 };
        shared.Own(mappings);
        var events = new UnitEvents(shared, oas);
        shared.Events = events;
        if (kind == UnitKind.Vtd)
        {
            shared.Attach(new VtdIommu(memory, Copy(vtd!, events)));
        }
        else
        {
            shared.Attach(new SmmuV3(memory, new SmmuOptions
            {
                Features = smmu!.Features,
                StreamIdBits = smmu.StreamIdBits,
                MaxCommandQueueLog2 = smmu.MaxCommandQueueLog2,
                OutputAddressBits = smmu.OutputAddressBits,
                Engine = smmu.Engine,
                Msi = events.Msi,
                WiredInterrupt = events.Wired,
            }));
        }

        return shared;
    }

    private static VtdOptions Copy(VtdOptions o, UnitEvents events) => new()
    {
        ScalableMode = o.ScalableMode,
        Pasid = o.Pasid,
        DeviceTlb = o.DeviceTlb,
        DeviceTlbThrottling = o.DeviceTlbThrottling,
        PageRequestDrain = o.PageRequestDrain,
        InterruptRemapping = o.InterruptRemapping,
        DrainReads = o.DrainReads,
        DrainWrites = o.DrainWrites,
        CachingMode = o.CachingMode,
        MaxAddressMask = o.MaxAddressMask,
        MaxHandleMask = o.MaxHandleMask,
        HostAddressWidth = o.HostAddressWidth,
        Engine = o.Engine,
        Msi = events.Msi,
    };

    private static (ErrorCode, uint) ReadVtdOptions(ReadOnlySpan<byte> options, uint flags, EngineOptions engine, out VtdOptions? vtd)
    {
        const int O = ProtocolConstants.CreateRequestSize;
        vtd = null;
        if ((flags & ~VtdFlagsKnown) != 0)
        {
            return (ErrorCode.InvalidArgument, O + 4);
        }

        int haw = options[8] == 0 ? 48 : options[8];
        if (haw is < 32 or > 64)
        {
            return (ErrorCode.InvalidArgument, O + 8);
        }

        bool limits = (flags & VtdLimitsGiven) != 0;
        if (options[9] > (limits ? 63 : 0))
        {
            return (ErrorCode.InvalidArgument, O + 9);
        }

        if (options[10] > (limits ? 15 : 0))
        {
            return (ErrorCode.InvalidArgument, O + 10);
        }

        int reserved = options.Slice(11, 5).IndexOfAnyExcept((byte)0);
        if (reserved >= 0)
        {
            return (ErrorCode.InvalidArgument, (uint)(O + 11 + reserved));
        }

        vtd = new VtdOptions
        {
            ScalableMode = (flags & (1u << 0)) == 0,
            Pasid = (flags & (1u << 1)) == 0,
            DeviceTlb = (flags & (1u << 2)) == 0,
            DeviceTlbThrottling = (flags & (1u << 3)) == 0,
            PageRequestDrain = (flags & (1u << 4)) == 0,
            InterruptRemapping = (flags & (1u << 5)) == 0,
            DrainReads = (flags & (1u << 6)) == 0,
            DrainWrites = (flags & (1u << 7)) == 0,
            CachingMode = (flags & (1u << 8)) != 0,
            MaxAddressMask = limits ? options[9] : 18,
            MaxHandleMask = limits ? options[10] : 15,
            HostAddressWidth = haw,
            Engine = engine,
        };
        return (ErrorCode.Ok, 0);
    }

    private static (ErrorCode, uint) ReadSmmuOptions(ReadOnlySpan<byte> options, uint flags, EngineOptions engine, out SmmuOptions? smmu)
    {
        const int O = ProtocolConstants.CreateRequestSize;
        smmu = null;
        if ((flags & ~SmmuFlagsKnown) != 0)
        {
            return (ErrorCode.InvalidArgument, O + 4);
        }

        bool sizes = (flags & SmmuSizesGiven) != 0;
        int sid = sizes ? options[8] : 16, ssid = sizes ? options[9] : 20, cmdq = sizes ? options[10] : 19, oas = sizes ? options[11] : 48;
        if (!sizes)
        {
            int set = options.Slice(8, 4).IndexOfAnyExcept((byte)0);
            if (set >= 0)
            {
                return (ErrorCode.InvalidArgument, (uint)(O + 8 + set));
            }
        }

        if (sid > 32)
        {
            return (ErrorCode.InvalidArgument, O + 8);
        }

        if (ssid > 20)
        {
            return (ErrorCode.InvalidArgument, O + 9);
        }

        if (cmdq > 19)
        {
            return (ErrorCode.InvalidArgument, O + 10);
        }

        if (oas is not (32 or 36 or 40 or 42 or 44 or 48 or 52))
        {
            return (ErrorCode.InvalidArgument, O + 11);
        }

        int reserved = options.Slice(12, 4).IndexOfAnyExcept((byte)0);
        if (reserved >= 0)
        {
            return (ErrorCode.InvalidArgument, (uint)(O + 12 + reserved));
        }

        smmu = new SmmuOptions
        {
            Features = new SmmuFeatures
            {
                Stage1 = (flags & (1u << 0)) == 0,
                Stage2 = (flags & (1u << 1)) == 0,
                RangeInvalidation = (flags & (1u << 2)) == 0,
                Ats = (flags & (1u << 3)) == 0,
                Msi = (flags & (1u << 4)) == 0,
                Sev = (flags & (1u << 5)) == 0,
                Asid16 = (flags & (1u << 6)) == 0,
                Vmid16 = (flags & (1u << 7)) == 0,
                StrictReservedFields = (flags & (1u << 8)) == 0,
                Pri = (flags & (1u << 9)) != 0,
                Stall = (flags & (1u << 10)) != 0,
                SubstreamIdBits = ssid,
            },
            StreamIdBits = sid,
            MaxCommandQueueLog2 = cmdq,
            OutputAddressBits = oas,
            Engine = engine,
        };
        return (ErrorCode.Ok, 0);
    }

    private static (ErrorCode, uint) ReadIommufdOptions(ReadOnlySpan<byte> options, uint flags, uint deviceCount, EngineOptions engine,
        out IommufdOptions? iommufd, out IommuKind engineKind)
    {
        const int O = ProtocolConstants.CreateRequestSize;
        iommufd = null;
        engineKind = IommuKind.IntelVtd;
        if ((flags & ~IommufdFlagsKnown) != 0)
        {
            return (ErrorCode.InvalidArgument, O + 4);
        }

        if (deviceCount > ProtocolConstants.MaxIommufdDevices)
        {
            return (ErrorCode.InvalidArgument, O + 8);
        }

        if (options[12] is not (1 or 2))
        {
            return (ErrorCode.InvalidArgument, O + 12);
        }

        int reserved = options.Slice(13, 3).IndexOfAnyExcept((byte)0);
        if (reserved >= 0)
        {
            return (ErrorCode.InvalidArgument, (uint)(O + 13 + reserved));
        }

        uint regionCount = BinaryPrimitives.ReadUInt32LittleEndian(options);
        int at = ProtocolConstants.UnitOptionsPrefixSize + ((int)regionCount * ProtocolConstants.RegionSize);
        Span<ulong> seen = stackalloc ulong[ProtocolConstants.MaxIommufdDevices];
        for (int i = 0; i < (int)deviceCount; i++, at += ProtocolConstants.IommufdDeviceSize)
        {
            ReadOnlySpan<byte> d = options.Slice(at, ProtocolConstants.IommufdDeviceSize);
            if (d[0] is not (1 or 2))
            {
                return (ErrorCode.InvalidArgument, (uint)(O + at));
            }

            if ((d[1] & ~1) != 0)
            {
                return (ErrorCode.InvalidArgument, (uint)(O + at + 1));
            }

            if (d[2] != 0 || d[3] != 0)
            {
                return (ErrorCode.InvalidArgument, (uint)(O + at + (d[2] != 0 ? 2 : 3)));
            }

            uint stream = BinaryPrimitives.ReadUInt32LittleEndian(d[4..]);
            ulong key = ((ulong)d[0] << 32) | stream;
            if ((d[0] == 1 && stream > 0xFFFF) || seen[..i].Contains(key))
            {
                return (ErrorCode.InvalidArgument, (uint)(O + at + 4)); // a VT-d source id is 16 bits; one device per id
            }

            seen[i] = key;
        }

        engineKind = options[12] == 1 ? IommuKind.IntelVtd : IommuKind.ArmSmmuV3;
        iommufd = new IommufdOptions
        {
            Selftest = (flags & 1) != 0,
            VtdErrorReporting = (flags & 2) != 0 ? VtdErrorReporting.PerEntryHwError : VtdErrorReporting.Mainline,
            EngineOptions = engine,
        };
        return (ErrorCode.Ok, 0);
    }

    /// <summary>REG_READ / REG_WRITE's common checks: offset, size 4 or 8, reserved bytes, a VT-d or SMMUv3 unit.</summary>
    private static (ErrorCode, uint) CheckRegisterAccess(Unit unit, ReadOnlySpan<byte> body, int length, out uint offset, out int size)
    {
        offset = 0;
        size = 0;
        if (body.Length != length)
        {
            return (ErrorCode.Malformed, 0);
        }

        if (body[4] is not (4 or 8))
        {
            return (ErrorCode.InvalidArgument, 4);
        }

        int reserved = body.Slice(5, 3).IndexOfAnyExcept((byte)0);
        if (reserved >= 0)
        {
            return (ErrorCode.InvalidArgument, (uint)(5 + reserved));
        }

        if (unit.Vtd is null && unit.Smmu is null)
        {
            return (ErrorCode.WrongKind, (uint)unit.Kind);
        }

        offset = BinaryPrimitives.ReadUInt32LittleEndian(body);
        size = body[4];
        return (ErrorCode.Ok, 0);
    }

    private static (ErrorCode, uint) RegisterRead(in FrameHeader header, Unit unit, ReadOnlySpan<byte> body, IBufferWriter<byte> output)
    {
        (ErrorCode code, uint detail) = CheckRegisterAccess(unit, body, 8, out uint offset, out int size);
        if (code != ErrorCode.Ok)
        {
            return (code, detail);
        }

        ulong value;
        lock (unit.WriteGate)
        {
            value = unit.Vtd is { } v ? v.ReadRegister(offset, size) : unit.Smmu!.ReadRegister(offset, size);
        }

        Span<byte> reply = BeginReply(output, in header, unit.Id, 8, out int total);
        BinaryPrimitives.WriteUInt64LittleEndian(reply, value);
        output.Advance(total);
        return (ErrorCode.Ok, 0);
    }

    private static (ErrorCode, uint) RegisterWrite(in FrameHeader header, Unit unit, ReadOnlySpan<byte> body, IBufferWriter<byte> output)
    {
        (ErrorCode code, uint detail) = CheckRegisterAccess(unit, body, 16, out uint offset, out int size);
        if (code != ErrorCode.Ok)
        {
            return (code, detail);
        }

        ulong value = BinaryPrimitives.ReadUInt64LittleEndian(body[8..]);
        if (size == 4 && value > uint.MaxValue)
        {
            return (ErrorCode.InvalidArgument, 12);
        }

        UnitEvents events = unit.Events!;
        lock (unit.WriteGate)
        {
            events.Begin(output, offset, value); // event frames go out whole, before the reply
            try
            {
                if (unit.Vtd is { } v)
                {
                    v.WriteRegister(offset, value, size);
                }
                else
                {
                    unit.Smmu!.WriteRegister(offset, value, size);
                }
            }
            finally
            {
                events.End();
            }
        }

        Span<byte> reply = BeginReply(output, in header, unit.Id, 8, out int total);
        BinaryPrimitives.WriteUInt32LittleEndian(reply, (uint)events.Sent);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[4..], (uint)events.Dropped);
        output.Advance(total);
        return (ErrorCode.Ok, 0);
    }

    private static (ErrorCode, uint) IommufdIoctl(in FrameHeader header, Unit unit, ReadOnlySpan<byte> body, IBufferWriter<byte> output)
    {
        if (body.Length < 8 || (ulong)body.Length != 8UL + BinaryPrimitives.ReadUInt32LittleEndian(body[4..]))
        {
            return (ErrorCode.Malformed, 0);
        }

        if (unit.Iommufd is not { } context)
        {
            return (ErrorCode.WrongKind, (uint)unit.Kind);
        }

        uint request = BinaryPrimitives.ReadUInt32LittleEndian(body);
        int length = body.Length - 8;
        Span<byte> reply = BeginReply(output, in header, unit.Id, 8 + length, out int total);
        Span<byte> arg = reply.Slice(8, length);
        body[8..].CopyTo(arg); // the kernel's copy of the argument, written back in place
        int result;
        lock (unit.WriteGate)
        {
            result = context.Ioctl(request, arg);
        }

        BinaryPrimitives.WriteInt32LittleEndian(reply, result);
        BinaryPrimitives.WriteUInt32LittleEndian(reply[4..], (uint)length);
        output.Advance(total);
        return (ErrorCode.Ok, 0);
    }
}
