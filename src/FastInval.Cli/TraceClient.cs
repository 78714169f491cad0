using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using FastInval.Host;
using FastInval.Host.Traces;

namespace FastInval.Cli;

/// <summary>
/// A client of the wire protocol that talks to a dispatcher in this process (no socket), recording both directions in a
/// trace: what <c>fastinval generate</c> drives its workloads through, so a generated trace carries real replies.
/// Requests are encoded from the protocol document's layouts; a reply with an error status throws (a workload that
/// provokes errors asks with <see cref="Call"/> and <c>allowError</c>).
/// </summary>
internal sealed class TraceClient : IDisposable
{
    private readonly ServerCore _core;
    private readonly Session _session;
    private readonly ArrayBufferWriter<byte> _output = new(1 << 16);
    private byte[] _frame = new byte[1 << 16];
    private uint _nextRequestId = 1;

    public TraceClient(TraceWriter trace)
    {
        _core = new ServerCore(trace.Header.ToServerOptions());
        _session = new Session(_core, trace: trace);
        Operations++;
        Call(MessageType.Hello, 0, [1, 0, 0, 0, 0, 0, 0, 0]);
    }

    /// <summary>Entries, queries and descriptors sent, plus one per other request (the trace's "operations").</summary>
    public long Operations { get; private set; }

    /// <summary>Status of the last reply.</summary>
    public ErrorCode LastStatus { get; private set; }

    /// <summary>Sends one request; returns the reply's payload (valid until the next call).</summary>
    public ReadOnlySpan<byte> Call(ushort type, uint unit, ReadOnlySpan<byte> payload, bool allowError = false)
    {
        int length = ProtocolConstants.HeaderSize + payload.Length;
        if (_frame.Length < length)
        {
            _frame = new byte[Math.Max(length, _frame.Length * 2)];
        }

        new FrameHeader((uint)length, type, 0, _nextRequestId++, unit).Write(_frame);
        payload.CopyTo(_frame.AsSpan(ProtocolConstants.HeaderSize));
        return Send(length, allowError);
    }

    private ReadOnlySpan<byte> Send(int length, bool allowError)
    {
        _output.ResetWrittenCount();
        _session.Process(new ReadOnlySequence<byte>(_frame, 0, length), _output, 1, out _, out _);
        ReadOnlySpan<byte> reply = _output.WrittenSpan;
        FrameHeader header = FrameHeader.Read(reply);
        LastStatus = (ErrorCode)header.Status;
        if (header.Status != 0 && !allowError)
        {
            throw new InvalidOperationException($"request type 0x{BinaryPrimitives.ReadUInt16LittleEndian(_frame.AsSpan(4)):X4} failed: {(ErrorCode)header.Status} (detail {BinaryPrimitives.ReadUInt32LittleEndian(reply[16..])})");
        }

        return reply[ProtocolConstants.HeaderSize..(int)header.Length];
    }

    /// <summary>A request with a batch prefix (selector or count) and 32-byte items, encoded in place.</summary>
    private Span<byte> BeginBatch(ushort type, uint unit, int count, out int length)
    {
        length = ProtocolConstants.HeaderSize + ProtocolConstants.BatchPrefixSize + (count * ProtocolConstants.ItemSize);
        if (_frame.Length < length)
        {
            _frame = new byte[Math.Max(length, _frame.Length * 2)];
        }

        _frame.AsSpan(0, length).Clear();
        new FrameHeader((uint)length, type, 0, _nextRequestId++, unit).Write(_frame);
        Operations += count;
        return _frame.AsSpan(ProtocolConstants.HeaderSize, length - ProtocolConstants.HeaderSize);
    }

    public uint CreateEngine(int iotlb, int deviceTlb, int config)
    {
        Span<byte> p = stackalloc byte[ProtocolConstants.CreateRequestSize];
        p.Clear();
        p[0] = (byte)UnitKind.Engine;
        BinaryPrimitives.WriteInt32LittleEndian(p[8..], iotlb);
        BinaryPrimitives.WriteInt32LittleEndian(p[12..], deviceTlb);
        BinaryPrimitives.WriteInt32LittleEndian(p[16..], config);
        Operations++;
        return BinaryPrimitives.ReadUInt32LittleEndian(Call(MessageType.Create, 0, p));
    }

    public void Destroy(uint unit)
    {
        Operations++;
        Call(MessageType.Destroy, unit, []);
    }

    /// <summary>The unit's STATS reply.</summary>
    public ReadOnlySpan<byte> Stats(uint unit)
    {
        Operations++;
        return Call(MessageType.Stats, unit, []);
    }

    public ReadOnlySpan<byte> FillIotlb(uint unit, ReadOnlySpan<TranslationEntry> entries)
    {
        Span<byte> p = BeginBatch(MessageType.Fill, unit, entries.Length, out int length);
        p[0] = (byte)CacheSelector.Iotlb;
        BinaryPrimitives.WriteInt32LittleEndian(p[4..], entries.Length);
        for (int i = 0; i < entries.Length; i++)
        {
            Span<byte> s = p.Slice(8 + (32 * i), 32);
            ref readonly TranslationEntry e = ref entries[i];
            BinaryPrimitives.WriteUInt64LittleEndian(s, e.InputAddress);
            BinaryPrimitives.WriteUInt64LittleEndian(s[8..], e.OutputAddress);
            BinaryPrimitives.WriteUInt32LittleEndian(s[16..], e.AddressSpaceId);
            BinaryPrimitives.WriteUInt16LittleEndian(s[20..], e.DomainId);
            BinaryPrimitives.WriteUInt16LittleEndian(s[22..], (ushort)e.Rights);
            s[24] = (byte)e.Stage;
            s[25] = (byte)e.Granule;
            s[26] = e.SizeLog2;
            s[27] = (byte)((e.Global ? ProtocolConstants.EntryGlobal : 0) | (e.IsTable ? ProtocolConstants.EntryTable : 0));
        }

        return Send(length, false)[ProtocolConstants.BatchPrefixSize..];
    }

    public ReadOnlySpan<byte> FillDeviceTlb(uint unit, ReadOnlySpan<DeviceTlbEntry> entries)
    {
        Span<byte> p = BeginBatch(MessageType.Fill, unit, entries.Length, out int length);
        p[0] = (byte)CacheSelector.DeviceTlb;
        BinaryPrimitives.WriteInt32LittleEndian(p[4..], entries.Length);
        for (int i = 0; i < entries.Length; i++)
        {
            Span<byte> s = p.Slice(8 + (32 * i), 32);
            ref readonly DeviceTlbEntry e = ref entries[i];
            BinaryPrimitives.WriteUInt64LittleEndian(s, e.InputAddress);
            BinaryPrimitives.WriteUInt64LittleEndian(s[8..], e.OutputAddress);
            BinaryPrimitives.WriteUInt32LittleEndian(s[16..], e.SourceId);
            BinaryPrimitives.WriteUInt32LittleEndian(s[20..], e.Pasid);
            BinaryPrimitives.WriteUInt16LittleEndian(s[24..], (ushort)e.Rights);
            s[26] = e.SizeLog2;
            s[27] = e.Global ? ProtocolConstants.EntryGlobal : (byte)0;
        }

        return Send(length, false)[ProtocolConstants.BatchPrefixSize..];
    }

    public ReadOnlySpan<byte> FillConfig(uint unit, ReadOnlySpan<ConfigEntry> entries)
    {
        Span<byte> p = BeginBatch(MessageType.Fill, unit, entries.Length, out int length);
        p[0] = (byte)CacheSelector.Config;
        BinaryPrimitives.WriteInt32LittleEndian(p[4..], entries.Length);
        for (int i = 0; i < entries.Length; i++)
        {
            Span<byte> s = p.Slice(8 + (32 * i), 32);
            ref readonly ConfigEntry e = ref entries[i];
            BinaryPrimitives.WriteUInt64LittleEndian(s, e.Value);
            BinaryPrimitives.WriteUInt32LittleEndian(s[8..], e.SourceId);
            BinaryPrimitives.WriteUInt32LittleEndian(s[12..], e.AddressSpaceId);
            BinaryPrimitives.WriteUInt16LittleEndian(s[16..], e.DomainId);
            s[18] = (byte)e.Kind;
        }

        return Send(length, false)[ProtocolConstants.BatchPrefixSize..];
    }

    /// <summary>IOTLB leaf lookups; returns the number of hits.</summary>
    public int LookupIotlb(uint unit, TranslationStage stage, ushort domain, uint addressSpace, ReadOnlySpan<ulong> addresses)
    {
        Span<byte> p = BeginBatch(MessageType.Lookup, unit, addresses.Length, out int length);
        p[0] = (byte)CacheSelector.Iotlb;
        BinaryPrimitives.WriteInt32LittleEndian(p[4..], addresses.Length);
        for (int i = 0; i < addresses.Length; i++)
        {
            Span<byte> s = p.Slice(8 + (32 * i), 32);
            BinaryPrimitives.WriteUInt64LittleEndian(s, addresses[i]);
            BinaryPrimitives.WriteUInt32LittleEndian(s[8..], addressSpace);
            BinaryPrimitives.WriteUInt16LittleEndian(s[12..], domain);
            s[14] = (byte)stage;
        }

        return (int)BinaryPrimitives.ReadUInt32LittleEndian(Send(length, false)[4..]);
    }

    /// <summary>Device-TLB lookups of one source and PASID; returns the number of hits.</summary>
    public int LookupDeviceTlb(uint unit, uint source, uint pasid, ReadOnlySpan<ulong> addresses)
    {
        Span<byte> p = BeginBatch(MessageType.Lookup, unit, addresses.Length, out int length);
        p[0] = (byte)CacheSelector.DeviceTlb;
        BinaryPrimitives.WriteInt32LittleEndian(p[4..], addresses.Length);
        for (int i = 0; i < addresses.Length; i++)
        {
            Span<byte> s = p.Slice(8 + (32 * i), 32);
            BinaryPrimitives.WriteUInt64LittleEndian(s, addresses[i]);
            BinaryPrimitives.WriteUInt32LittleEndian(s[8..], source);
            BinaryPrimitives.WriteUInt32LittleEndian(s[12..], pasid);
        }

        return (int)BinaryPrimitives.ReadUInt32LittleEndian(Send(length, false)[4..]);
    }

    /// <summary>Configuration lookups of one kind; returns the number of hits.</summary>
    public int LookupConfig(uint unit, ConfigKinds kind, uint source, ReadOnlySpan<uint> addressSpaces)
    {
        Span<byte> p = BeginBatch(MessageType.Lookup, unit, addressSpaces.Length, out int length);
        p[0] = (byte)CacheSelector.Config;
        BinaryPrimitives.WriteInt32LittleEndian(p[4..], addressSpaces.Length);
        for (int i = 0; i < addressSpaces.Length; i++)
        {
            Span<byte> s = p.Slice(8 + (32 * i), 32);
            s[0] = (byte)kind;
            BinaryPrimitives.WriteUInt32LittleEndian(s[4..], source);
            BinaryPrimitives.WriteUInt32LittleEndian(s[8..], addressSpaces[i]);
        }

        return (int)BinaryPrimitives.ReadUInt32LittleEndian(Send(length, false)[4..]);
    }

    /// <summary>Executes descriptors; returns the reply's counts (the statuses are in <see cref="LastStatuses"/>).</summary>
    public BatchResult Execute(uint unit, ReadOnlySpan<InvalidationDescriptor> descriptors)
    {
        Span<byte> p = BeginBatch(MessageType.Execute, unit, descriptors.Length, out int length);
        BinaryPrimitives.WriteInt32LittleEndian(p, descriptors.Length);
        MemoryMarshal.AsBytes(descriptors).CopyTo(p[8..]);
        ReadOnlySpan<byte> r = Send(length, false);
        _statuses = r[ProtocolConstants.ExecuteReplyPrefixSize..].ToArray();
        return new BatchResult((int)BinaryPrimitives.ReadUInt32LittleEndian(r), (int)BinaryPrimitives.ReadUInt32LittleEndian(r[4..]),
            (int)BinaryPrimitives.ReadUInt32LittleEndian(r[8..]), (int)BinaryPrimitives.ReadUInt32LittleEndian(r[12..]),
            BinaryPrimitives.ReadInt32LittleEndian(r[16..]));
    }

    private byte[] _statuses = [];

    /// <summary>Statuses of the last EXECUTE.</summary>
    public ReadOnlySpan<byte> LastStatuses => _statuses;

    /// <summary>Replaces the unit's fault plan: device-TLB invalidations with these ordinals time out.</summary>
    public void FaultPlan(uint unit, ulong seed, ReadOnlySpan<ulong> timeoutOrdinals)
    {
        byte[] p = new byte[ProtocolConstants.FaultPlanPrefixSize + (8 * timeoutOrdinals.Length)];
        BinaryPrimitives.WriteUInt64LittleEndian(p, seed);
        BinaryPrimitives.WriteInt32LittleEndian(p.AsSpan(20), timeoutOrdinals.Length);
        for (int i = 0; i < timeoutOrdinals.Length; i++)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(p.AsSpan(ProtocolConstants.FaultPlanPrefixSize + (8 * i)), timeoutOrdinals[i]);
        }

        Operations++;
        Call(MessageType.FaultPlan, unit, p);
    }

    /// <summary>Ends the session (its DISCONNECT record) and frees its units.</summary>
    public void Dispose() => _session.Dispose();
}
