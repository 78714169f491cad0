using System.Buffers.Binary;
using FastInval.Internals;
using static FastInval.Vtd.VtdRegisters;

namespace FastInval.Vtd;

// Migration state and reset. State image (also in docs/migration.md), version 1, StateSize = 136 bytes, every field little-endian:
//   0 u32 magic 0x44564946 ("FIVD")      4 u16 version = 1        6 u16 image size = 136
//   8 u64 CAP (must equal the target's) 16 u64 ECAP (must equal the target's)
//  24 u32 GSTS   28 u32 FSTS   32 u64 RTADDR   40 u32 latched translation mode (0 legacy, 1 scalable, 2 invalid)
//  44 u32 FECTL  48 u32 FEDATA 52 u32 FEADDR   56 u32 FEUADDR  60 u32 ICS
//  64 u64 IQH    72 u64 IQT    80 u64 IQA
//  88 u32 IECTL  92 u32 IEDATA 96 u32 IEADDR  100 u32 IEUADDR
// 104 u64 IQERCD 112 u64 IRTA 120 u64 descriptor fetches (the fault plan's fetch ordinal) 128 u64 reserved (0)
// Between two register accesses the unit holds nothing else: every descriptor up to the tail has been processed (or
// the queue is stopped by IQE / ITE, recorded in FSTS and IQERCD), and interrupts still to be sent are FECTL.IP /
// IECTL.IP. The caches are not in the image: as hardware may drop them, the destination starts with what its engine
// holds (nothing, for a fresh unit) and the host fills it again from the guest's tables.
public sealed partial class VtdIommu
{
    /// <summary>Bytes of a state image of this version.</summary>
    public const int StateSize = 136;

    private const uint StateMagic = 0x44564946; // "FIVD"
    private const ushort StateVersion = 1;

    /// <summary>Writes the unit's state image to <paramref name="destination"/> and returns
    /// its size, <see cref="StateSize"/>. The format is documented in docs/migration.md (a magic, a version, the image size,
    /// the capability registers the destination must match, then the registers, queue positions and pending errors).
    /// Take it between register accesses, with the VMM's MMIO path stopped.</summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than <see cref="StateSize"/>.</exception>
    /// <exception cref="InvalidOperationException">Called from inside a register write (an MSI callback), or while a
    /// device-TLB request to <see cref="VtdOptions.DeviceTlbSink"/> is unanswered (a held wait is not in the image: wait
    /// for the answers or their time-out).</exception>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public int SaveState(Span<byte> destination)
    {
        using Lock.Scope gate = _core.Gate.EnterScope();
        _core.ThrowIfDisposed(this);
        StateImage.CheckDestination(destination, StateSize, "VT-d");

        _core.ThrowIfRunning();
        _core.ThrowIfDeviceTlbOutstanding();
        Span<byte> s = destination[..StateSize];
        StateImage.WriteHeader(s, StateMagic, StateVersion, StateSize);
        BinaryPrimitives.WriteUInt64LittleEndian(s[8..], _cap);
        BinaryPrimitives.WriteUInt64LittleEndian(s[16..], _ecap);
        BinaryPrimitives.WriteUInt32LittleEndian(s[24..], _gsts);
        BinaryPrimitives.WriteUInt32LittleEndian(s[28..], _fsts);
        BinaryPrimitives.WriteUInt64LittleEndian(s[32..], _rtaddr);
        BinaryPrimitives.WriteUInt32LittleEndian(s[40..], (uint)_mode);
        BinaryPrimitives.WriteUInt32LittleEndian(s[44..], _fectl);
        BinaryPrimitives.WriteUInt32LittleEndian(s[48..], _fedata);
        BinaryPrimitives.WriteUInt32LittleEndian(s[52..], _feaddr);
        BinaryPrimitives.WriteUInt32LittleEndian(s[56..], _feuaddr);
        BinaryPrimitives.WriteUInt32LittleEndian(s[60..], _ics);
        BinaryPrimitives.WriteUInt64LittleEndian(s[64..], _iqh);
        BinaryPrimitives.WriteUInt64LittleEndian(s[72..], _iqt);
        BinaryPrimitives.WriteUInt64LittleEndian(s[80..], _iqa);
        BinaryPrimitives.WriteUInt32LittleEndian(s[88..], _iectl);
        BinaryPrimitives.WriteUInt32LittleEndian(s[92..], _iedata);
        BinaryPrimitives.WriteUInt32LittleEndian(s[96..], _ieaddr);
        BinaryPrimitives.WriteUInt32LittleEndian(s[100..], _ieuaddr);
        BinaryPrimitives.WriteUInt64LittleEndian(s[104..], _iqercd);
        BinaryPrimitives.WriteUInt64LittleEndian(s[112..], _irta);
        BinaryPrimitives.WriteUInt64LittleEndian(s[120..], _core.Fetches);
        BinaryPrimitives.WriteUInt64LittleEndian(s[128..], 0);
        return StateSize;
    }

    /// <summary>Replaces the unit's registers and queue state with the image in <paramref name="image"/> (from
    /// <see cref="SaveState"/> of a unit with the same options), so that the guest's queue continues exactly where the
    /// source stopped. Nothing is processed and no interrupt is sent by the restore itself; the caches are not touched.
    /// The image is checked whole before anything changes: a bad image leaves the unit as it was.</summary>
    /// <exception cref="ArgumentException">The image is short, has another magic, version or size, was saved by a unit
    /// with other capabilities (CAP, ECAP), or holds a value no unit can be in (a bit outside a register's implemented
    /// bits, an unknown translation mode, a non-zero reserved field).</exception>
    /// <exception cref="InvalidOperationException">Called from inside a register write (an MSI callback).</exception>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public void RestoreState(ReadOnlySpan<byte> image)
    {
        using Lock.Scope gate = _core.Gate.EnterScope();
        _core.ThrowIfDisposed(this);
        _core.ThrowIfRunning();
        StateImage.CheckHeader(image, StateMagic, StateVersion, StateSize, "VT-d");

        ulong cap = StateImage.U64(image, 8), ecap = StateImage.U64(image, 16);
        if (cap != _cap || ecap != _ecap)
        {
            ThrowHelper.Argument(nameof(image), $"the image is from a unit with CAP 0x{cap:x}, ECAP 0x{ecap:x}; this one has CAP 0x{_cap:x}, ECAP 0x{_ecap:x}");
        }

        uint gsts = StateImage.U32(image, 24), fsts = StateImage.U32(image, 28), mode = StateImage.U32(image, 40);
        uint fectl = StateImage.U32(image, 44), feaddr = StateImage.U32(image, 52), ics = StateImage.U32(image, 60);
        uint iectl = StateImage.U32(image, 88), ieaddr = StateImage.U32(image, 96);
        ulong rtaddr = StateImage.U64(image, 32), iqh = StateImage.U64(image, 64), iqt = StateImage.U64(image, 72), iqa = StateImage.U64(image, 80);
        ulong iqercd = StateImage.U64(image, 104), irta = StateImage.U64(image, 112), reserved = StateImage.U64(image, 128);
        uint gstsBits = Te | Qie | Srtp | (_caps.InterruptRemapping ? Ire | Cfi | Sirtp : 0);
        const uint controlBits = InterruptMask | InterruptPending;
        const ulong iqercdBits = IqeiMask | ItesidMask | IcesidMask;
        bool valid = (gsts & ~gstsBits) == 0 && (fsts & ~(Iqe | Ice | Ite)) == 0 && mode <= (uint)VtdTranslationMode.Invalid &&
                     (fectl & ~controlBits) == 0 && (iectl & ~controlBits) == 0 && (feaddr & ~MessageAddressWritable) == 0 &&
                     (ieaddr & ~MessageAddressWritable) == 0 && (ics & ~Iwc) == 0 && (rtaddr & ~RtaddrWritable) == 0 &&
                     (iqh & ~QueueOffsetMask) == 0 && (iqt & ~QueueOffsetMask) == 0 && (iqa & ~IqaWritable) == 0 &&
                     (iqercd & ~iqercdBits) == 0 && (irta & ~(_caps.InterruptRemapping ? IrtaWritable : 0)) == 0 && reserved == 0;
        if (!valid)
        {
            ThrowHelper.Argument(nameof(image), "the VT-d state image holds a value no unit can be in");
        }

        _gsts = gsts;
        _fsts = fsts;
        _rtaddr = rtaddr;
        _mode = (VtdTranslationMode)mode;
        _fectl = fectl;
        _fedata = StateImage.U32(image, 48);
        _feaddr = feaddr;
        _feuaddr = StateImage.U32(image, 56);
        _ics = ics;
        _iqh = iqh;
        _iqt = iqt;
        _iqa = iqa;
        _iectl = iectl;
        _iedata = StateImage.U32(image, 92);
        _ieaddr = ieaddr;
        _ieuaddr = StateImage.U32(image, 100);
        _iqercd = iqercd;
        _irta = irta;
        _core.Fetches = StateImage.U64(image, 120);
        ClearDeviceTlbState();
        _core.DropDeviceTlbRequests();
    }

    /// <summary>Returns the unit to its power-on state: every register at its reset value (FECTL.IM and IECTL.IM set,
    /// everything else 0, queued invalidation off, legacy translation mode), the fetch ordinal at 0. With its own engine
    /// the unit also empties the caches (a reset leaves nothing cached); a caller's engine, which other units may share,
    /// is left to its owner. <see cref="InternalErrors"/> is a host diagnostic and is kept.</summary>
    /// <exception cref="InvalidOperationException">Called from inside a register write (an MSI callback).</exception>
    /// <exception cref="ObjectDisposedException">The unit is disposed.</exception>
    public void Reset()
    {
        using Lock.Scope gate = _core.Gate.EnterScope();
        _core.ThrowIfDisposed(this);
        _core.ThrowIfRunning();
        _gsts = 0;
        _rtaddr = 0;
        _mode = VtdTranslationMode.Legacy;
        _fsts = 0;
        _fectl = InterruptMask;
        _fedata = _feaddr = _feuaddr = 0;
        _iqh = _iqt = _iqa = 0;
        _ics = 0;
        _iectl = InterruptMask;
        _iedata = _ieaddr = _ieuaddr = 0;
        _iqercd = 0;
        _irta = 0;
        ClearDeviceTlbState();
        _core.Reset();
    }

    private void ClearDeviceTlbState()
    {
        _held = _stalled = _timedOut = false;
        _timedOutSource = 0;
        _heldWait = default;
    }
}
