using System.Buffers;
using System.Buffers.Binary;
using FastInval.Smmu;
using FastInval.Vtd;

namespace FastInval.Host;

/// <summary>
/// Turns a VT-d or SMMUv3 unit's interrupts into event frames (docs/protocol.md §4.12). The unit signals synchronously,
/// inside the register write that caused it, so every event frame is written whole into the connection's output before
/// that request's reply (events never interleave with a reply). At most <see cref="ProtocolConstants.MaxEventsPerRequest"/>
/// frames per request; the rest are counted as dropped in the reply.
/// </summary>
/// <remarks>
/// <para>The units deliver every MSI through one callback (address, data). Which interrupt it was is decided exactly
/// from the unit's registers at the moment of the call: for VT-d, a message sent while writing FECTL is the fault event
/// and one sent while writing IECTL the completion event; during any other write the completion event is the one MSI
/// sent right when ICS.IWC goes from 0 to 1 (it can only be sent then, with IECTL.IM = 0), every other MSI is the fault
/// event. For SMMUv3, a GERROR MSI is sent right after a GERROR bit becomes active, with IRQ_CTRL.GERROR_IRQEN set, to
/// GERROR_IRQ_CFG0 with GERROR_IRQ_CFG1's data; any other MSI is a CMD_SYNC's.</para>
/// </remarks>
internal sealed class UnitEvents
{
    private readonly Unit _unit;
    private readonly ulong _oasMask;
    private IBufferWriter<byte>? _output;
    private uint _offset;
    private ulong _value;

    // VT-d
    private bool _iwcBefore;
    private bool _completionSeen;
    private bool _iteBefore;

    // SMMUv3
    private uint _activeSeen;
    private uint _activeBefore;
    private bool _syncMsiSent;

    public UnitEvents(Unit unit, int outputAddressBits = 64)
    {
        _unit = unit;
        _oasMask = outputAddressBits >= 64 ? ulong.MaxValue : (1UL << outputAddressBits) - 1;
        Msi = _unit.Kind == UnitKind.Vtd ? OnVtdMsi : OnSmmuMsi;
        Wired = OnSmmuWired;
    }

    /// <summary>The unit's MSI callback.</summary>
    public Action<ulong, uint> Msi { get; }

    /// <summary>The SMMU's wired-interrupt callback.</summary>
    public Action<SmmuInterrupt> Wired { get; }

    /// <summary>Event frames written for the current request.</summary>
    public int Sent { get; private set; }

    /// <summary>Events past the limit for the current request.</summary>
    public int Dropped { get; private set; }

    /// <summary>Starts a register write of <paramref name="value"/> at <paramref name="offset"/>.</summary>
    public void Begin(IBufferWriter<byte> output, uint offset, ulong value)
    {
        _output = output;
        _offset = offset;
        _value = value;
        Sent = 0;
        Dropped = 0;
        if (_unit.Vtd is { } v)
        {
            _iwcBefore = (v.ReadRegister(VtdRegisters.Ics, 4) & VtdRegisters.Iwc) != 0;
            _iteBefore = (v.ReadRegister(VtdRegisters.Fsts, 4) & VtdRegisters.Ite) != 0;
            _completionSeen = false;
        }
        else if (_unit.Smmu is { } s)
        {
            _activeBefore = SmmuActive(s);
            _activeSeen = _activeBefore;
            _syncMsiSent = false;
        }
    }

    /// <summary>Ends the register write: the device-TLB time-out event, if the write raised one.</summary>
    public void End()
    {
        if (_unit.Vtd is { } v)
        {
            uint fsts = (uint)v.ReadRegister(VtdRegisters.Fsts, 4);
            bool cleared = _offset == VtdRegisters.Fsts && (_value & VtdRegisters.Ite) != 0;
            if ((fsts & VtdRegisters.Ite) != 0 && (!_iteBefore || cleared))
            {
                ulong iqercd = v.ReadRegister(VtdRegisters.Iqercd, 8);
                Write(MessageType.EventDeviceTlbTimeout, 0, 0, 0, (uint)((iqercd >> VtdRegisters.ItesidShift) & 0xFFFF), 0, 0);
            }
        }
        else if (_unit.Smmu is { } s)
        {
            uint active = SmmuActive(s);
            uint cons = (uint)s.ReadRegister(SmmuRegisters.CmdqCons, 4);
            if ((active & SmmuRegisters.GerrorCmdqErr) != 0 && (_activeBefore & SmmuRegisters.GerrorCmdqErr) == 0 &&
                ((cons & SmmuRegisters.ConsErrMask) >> SmmuRegisters.ConsErrShift) == (uint)SmmuCommandError.AtcInvalidationSync)
            {
                Write(MessageType.EventDeviceTlbTimeout, 0, 0, 0, uint.MaxValue, 0, 0);
            }
        }

        _output = null;
    }

    private static uint SmmuActive(SmmuV3 s) =>
        (uint)s.ReadRegister(SmmuRegisters.Gerror, 4) ^ (uint)s.ReadRegister(SmmuRegisters.Gerrorn, 4);

    private void OnVtdMsi(ulong address, uint data)
    {
        VtdIommu v = _unit.Vtd!;
        bool completion;
        if (_offset == VtdRegisters.Fectl)
        {
            completion = false;
        }
        else if (_offset == VtdRegisters.Iectl)
        {
            completion = true;
        }
        else
        {
            uint ics = (uint)v.ReadRegister(VtdRegisters.Ics, 4);
            uint iectl = (uint)v.ReadRegister(VtdRegisters.Iectl, 4);
            completion = !_iwcBefore && !_completionSeen && (ics & VtdRegisters.Iwc) != 0 && (iectl & VtdRegisters.InterruptMask) == 0;
            _completionSeen |= completion;
        }

        if (completion)
        {
            Write(MessageType.EventVtdCompletion, address, data, ProtocolConstants.DeliveryMsi,
                (uint)v.ReadRegister(VtdRegisters.Ics, 4), Control(v, VtdRegisters.Iectl), 0);
        }
        else
        {
            Write(MessageType.EventVtdFault, address, data, ProtocolConstants.DeliveryMsi,
                (uint)v.ReadRegister(VtdRegisters.Fsts, 4), Control(v, VtdRegisters.Fectl), v.ReadRegister(VtdRegisters.Iqercd, 8));
        }
    }

    /// <summary>IECTL or FECTL as it is when the message goes out. During a write to that register itself the unit sends
    /// the pending message before it stores the new value, so a read would still give the old IM | IP; the register is
    /// then what the write leaves: the written IM (0, or no message would be sent) and IP cleared by the sending.</summary>
    private uint Control(VtdIommu v, uint register) =>
        _offset == register ? (uint)_value & VtdRegisters.InterruptMask : (uint)v.ReadRegister(register, 4);

    private void OnSmmuMsi(ulong address, uint data)
    {
        SmmuV3 s = _unit.Smmu!;
        uint active = SmmuActive(s);
        bool gerror = (active & ~_activeSeen) != 0 &&
            (s.ReadRegister(SmmuRegisters.IrqCtrl, 4) & SmmuRegisters.IrqGerrorEn) != 0 &&
            address == (s.ReadRegister(SmmuRegisters.GerrorIrqCfg0, 8) & SmmuRegisters.MsiAddressMask & _oasMask) &&
            data == (uint)s.ReadRegister(SmmuRegisters.GerrorIrqCfg1, 4);
        if (gerror)
        {
            _activeSeen = active;
            WriteGerror(s, address, data, ProtocolConstants.DeliveryMsi);
        }
        else
        {
            _syncMsiSent = true;
            Write(MessageType.EventSmmuCmdSyncMsi, address, data, ProtocolConstants.DeliveryMsi,
                (uint)s.ReadRegister(SmmuRegisters.CmdqCons, 4), (uint)s.ReadRegister(SmmuRegisters.CmdqProd, 4), 0);
        }
    }

    private void OnSmmuWired(SmmuInterrupt interrupt)
    {
        SmmuV3 s = _unit.Smmu!;
        switch (interrupt)
        {
            case SmmuInterrupt.GlobalError:
                _activeSeen = SmmuActive(s);
                WriteGerror(s, 0, 0, ProtocolConstants.DeliveryWired);
                break;
            case SmmuInterrupt.CommandSync when _syncMsiSent:
                _syncMsiSent = false; // the same CMD_SYNC's MSI was the event
                break;
            default:
                Write(MessageType.EventSmmuCmdSyncMsi, 0, 0, interrupt == SmmuInterrupt.Event ? ProtocolConstants.DeliveryWakeUp : ProtocolConstants.DeliveryWired,
                    (uint)s.ReadRegister(SmmuRegisters.CmdqCons, 4), (uint)s.ReadRegister(SmmuRegisters.CmdqProd, 4), 0);
                break;
        }
    }

    private void WriteGerror(SmmuV3 s, ulong address, uint data, byte delivery) =>
        Write(MessageType.EventSmmuGerror, address, data, delivery, (uint)s.ReadRegister(SmmuRegisters.Gerror, 4),
            (uint)s.ReadRegister(SmmuRegisters.Gerrorn, 4), s.ReadRegister(SmmuRegisters.CmdqCons, 4));

    private void Write(ushort type, ulong address, uint data, byte delivery, uint a, uint b, ulong c)
    {
        if (_output is null)
        {
            return; // not inside a request (never expected: units signal only from register writes)
        }

        if (Sent >= ProtocolConstants.MaxEventsPerRequest)
        {
            Dropped++;
            return;
        }

        const int Total = ProtocolConstants.HeaderSize + ProtocolConstants.EventPayloadSize;
        Span<byte> span = _output.GetSpan(Total)[..Total];
        new FrameHeader(Total, type, 0, 0, _unit.Id).Write(span);
        Span<byte> p = span[ProtocolConstants.HeaderSize..];
        p.Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(p, address);
        BinaryPrimitives.WriteUInt32LittleEndian(p[8..], data);
        p[12] = delivery;
        BinaryPrimitives.WriteUInt32LittleEndian(p[16..], a);
        BinaryPrimitives.WriteUInt32LittleEndian(p[20..], b);
        BinaryPrimitives.WriteUInt64LittleEndian(p[24..], c);
        _output.Advance(Total);
        Sent++;
    }
}
