using System.Buffers.Binary;
using FastInval.Host;

namespace FastInval.Tests.Host;

/// <summary>Guest RAM as a VMM holds it: a memfd, mapped shared in this process too, so the test writes the queue and
/// reads the status writes in the very pages the server maps.</summary>
internal sealed unsafe class SharedRam : IDisposable
{
    private readonly nint _address;

    public SharedRam(string name, int length)
    {
        Fd = UnixFds.CreateMemfd(name, length);
        Assert.True(Fd >= 0, $"memfd_create: errno {-Fd}");
        Length = length;
        _address = UnixFds.MapShared(Fd, (ulong)length, 0, out int errno);
        Assert.True(_address != 0, $"mmap: errno {errno}");
        Name = name;
    }

    public int Fd { get; }

    public int Length { get; }

    public string Name { get; }

    public Span<byte> Bytes => new((void*)_address, Length);

    public void Dispose()
    {
        UnixFds.Unmap(_address, (ulong)Length);
        UnixFds.Close(Fd);
    }

    /// <summary>Mappings of this memfd in this process (from /proc/self/maps), the test's own included.</summary>
    public int MappingsInProcess() => File.ReadAllLines("/proc/self/maps").Count(l => l.Contains("/memfd:" + Name + " ", StringComparison.Ordinal) || l.EndsWith("/memfd:" + Name + " (deleted)", StringComparison.Ordinal));
}

/// <summary>Frames of the 1.1 requests, encoded from the protocol document (independently of the server's code).</summary>
internal static class SharedFrames
{
    public const ushort RegRead = 0x0020, RegWrite = 0x0021, Ioctl = 0x0030;
    public const ushort EventVtdCompletion = 0x4001, EventVtdFault = 0x4002, EventSmmuSync = 0x4003, EventSmmuGerror = 0x4004, EventTimeout = 0x4005;

    public readonly record struct RegionSpec(ulong Base, ulong Length, ulong FileOffset = 0);

    /// <summary>CREATE of a VT-d (kind 3) or SMMUv3 (kind 4) unit: the options prefix (region count, flags, params) and
    /// the regions; <paramref name="fdCount"/> as declared in the header (normally the region count).</summary>
    public static byte[] CreateShared(uint id, ushort kind, RegionSpec[] regions, uint flags = 0, uint parameters = 0, int capacity = 64,
        uint? fdCount = null)
    {
        byte[] p = new byte[24 + 16 + (24 * regions.Length)];
        BinaryPrimitives.WriteUInt16LittleEndian(p, kind);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(4), fdCount ?? (uint)regions.Length);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(8), capacity);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(12), capacity);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(16), capacity);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(20), p.Length - 24);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(24), regions.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(28), flags);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(32), parameters);
        for (int i = 0; i < regions.Length; i++)
        {
            Span<byte> r = p.AsSpan(40 + (24 * i));
            BinaryPrimitives.WriteUInt64LittleEndian(r, regions[i].Base);
            BinaryPrimitives.WriteUInt64LittleEndian(r[8..], regions[i].Length);
            BinaryPrimitives.WriteUInt64LittleEndian(r[16..], regions[i].FileOffset);
        }

        return Frames.Frame(0x0002, id, 0, p);
    }

    /// <summary>CREATE of an iommufd context (kind 2): user-memory regions (lengths), devices (iommu 1 VT-d / 2 SMMUv3,
    /// ATS, stream id), the engine kind FILL/LOOKUP address.</summary>
    public static byte[] CreateIommufd(uint id, ulong[] regionLengths, (byte Iommu, bool Ats, uint Stream)[] devices, uint flags = 1, byte engineKind = 1)
    {
        byte[] p = new byte[24 + 16 + (24 * regionLengths.Length) + (8 * devices.Length)];
        BinaryPrimitives.WriteUInt16LittleEndian(p, 2);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(4), regionLengths.Length);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(8), 256);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(12), 256);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(16), 256);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(20), p.Length - 24);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(24), regionLengths.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(28), flags);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(32), devices.Length);
        p[36] = engineKind;
        for (int i = 0; i < regionLengths.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(40 + (24 * i) + 8), regionLengths[i]);
        }

        int at = 40 + (24 * regionLengths.Length);
        foreach ((byte iommu, bool ats, uint stream) in devices)
        {
            p[at] = iommu;
            p[at + 1] = ats ? (byte)1 : (byte)0;
            BinaryPrimitives.WriteUInt32LittleEndian(p.AsSpan(at + 4), stream);
            at += 8;
        }

        return Frames.Frame(0x0002, id, 0, p);
    }

    public static byte[] ReadRegister(uint id, uint unit, uint offset, byte size)
    {
        byte[] p = new byte[8];
        BinaryPrimitives.WriteUInt32LittleEndian(p, offset);
        p[4] = size;
        return Frames.Frame(RegRead, id, unit, p);
    }

    public static byte[] WriteRegister(uint id, uint unit, uint offset, byte size, ulong value)
    {
        byte[] p = new byte[16];
        BinaryPrimitives.WriteUInt32LittleEndian(p, offset);
        p[4] = size;
        BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(8), value);
        return Frames.Frame(RegWrite, id, unit, p);
    }

    public static byte[] IommufdIoctl(uint id, uint unit, uint request, ReadOnlySpan<byte> arg)
    {
        byte[] p = new byte[8 + arg.Length];
        BinaryPrimitives.WriteUInt32LittleEndian(p, request);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(4), arg.Length);
        arg.CopyTo(p.AsSpan(8));
        return Frames.Frame(Ioctl, id, unit, p);
    }
}

/// <summary>An event frame as read off the socket.</summary>
internal readonly record struct WireEvent(ushort Type, uint UnitId, ulong Address, uint Data, byte Delivery, uint A, uint B, ulong C)
{
    public static WireEvent From(WireReply r)
    {
        Assert.Equal(0u, r.RequestId);
        Assert.Equal(0, r.Status);
        Assert.Equal(32, r.Payload.Length);
        byte[] p = r.Payload;
        Assert.True(p.AsSpan(13, 3).IndexOfAnyExcept((byte)0) < 0, "reserved event bytes");
        return new WireEvent(r.Type, r.UnitId, BinaryPrimitives.ReadUInt64LittleEndian(p), BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(8)), p[12],
            BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(16)), BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(20)), BinaryPrimitives.ReadUInt64LittleEndian(p.AsSpan(24)));
    }
}

internal static class SharedWireClient
{
    /// <summary>Sends <paramref name="frame"/> with <paramref name="fds"/> as SCM_RIGHTS on the frame's first byte.</summary>
    public static void SendWithFds(this WireClient c, byte[] frame, params int[] fds)
    {
        int sent = 0;
        while (sent < frame.Length)
        {
            int n = UnixFds.Send((int)c.Socket.Handle, frame.AsSpan(sent), sent == 0 ? fds : []);
            Assert.True(n > 0 || n == -UnixFds.EAgain, $"sendmsg: errno {-n}");
            sent += Math.Max(n, 0);
        }
    }

    /// <summary>Sends a request (with descriptors) and reads frames up to its reply: the events before it, then it.</summary>
    public static (WireReply Reply, List<WireEvent> Events) CallWithEvents(this WireClient c, byte[] frame, params int[] fds)
    {
        if (fds.Length > 0)
        {
            c.SendWithFds(frame, fds);
        }
        else
        {
            c.Send(frame);
        }

        var events = new List<WireEvent>();
        while (true)
        {
            WireReply? r = c.Receive();
            Assert.NotNull(r);
            if (r.Value.Type is >= 0x4000 and <= 0x7FFE)
            {
                events.Add(WireEvent.From(r.Value));
                continue;
            }

            Assert.Equal(BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(8)), r.Value.RequestId);
            Assert.Equal(BinaryPrimitives.ReadUInt16LittleEndian(frame.AsSpan(4)) | 0x8000, r.Value.Type);
            return (r.Value, events);
        }
    }

    public static byte[] OkWithEvents(this WireClient c, byte[] frame, out List<WireEvent> events, params int[] fds)
    {
        (WireReply r, events) = c.CallWithEvents(frame, fds);
        Assert.True(r.Status == 0, $"error {r.Status} detail {r.Detail} for type 0x{BinaryPrimitives.ReadUInt16LittleEndian(frame.AsSpan(4)):x4}");
        return r.Payload;
    }

    public static uint CreateVtd(this WireClient c, SharedRam ram, ulong guestBase = 0, uint flags = 0)
    {
        byte[] p = c.OkWithEvents(SharedFrames.CreateShared(c.NextId(), 3, [new(guestBase, (ulong)ram.Length)], flags), out _, ram.Fd);
        return BinaryPrimitives.ReadUInt32LittleEndian(p);
    }

    public static uint CreateSmmu(this WireClient c, SharedRam ram, ulong guestBase = 0, uint flags = 0)
    {
        byte[] p = c.OkWithEvents(SharedFrames.CreateShared(c.NextId(), 4, [new(guestBase, (ulong)ram.Length)], flags), out _, ram.Fd);
        return BinaryPrimitives.ReadUInt32LittleEndian(p);
    }

    public static ulong Read(this WireClient c, uint unit, uint offset, byte size = 4) =>
        BinaryPrimitives.ReadUInt64LittleEndian(c.OkWithEvents(SharedFrames.ReadRegister(c.NextId(), unit, offset, size), out _));

    public static List<WireEvent> Write(this WireClient c, uint unit, uint offset, ulong value, byte size = 4)
    {
        byte[] p = c.OkWithEvents(SharedFrames.WriteRegister(c.NextId(), unit, offset, size, value), out List<WireEvent> events);
        Assert.Equal((uint)events.Count, BinaryPrimitives.ReadUInt32LittleEndian(p));
        Assert.Equal(0u, BinaryPrimitives.ReadUInt32LittleEndian(p.AsSpan(4)));
        return events;
    }
}
