using System.Buffers.Binary;
using FastInval.Internals;
using static FastInval.Smmu.SmmuRegisters;

namespace FastInval.Smmu;

// Migration state and reset. State image (also in docs/migration.md), version 1, StateSize = 128 bytes, every field little-endian:
//   0 u32 magic 0x33554D53 ("SMU3")    4 u16 version = 1      6 u16 image size = 128
//   8 u32 IDR0..IDR5 (24 bytes; must equal the target's)
//  32 u32 CR0   36 u32 CR1   40 u32 CR2   44 u32 GBPA   48 u32 IRQ_CTRL   52 u32 GERROR   56 u32 GERRORN
//  60 u32 GERROR_IRQ_CFG1    64 u64 GERROR_IRQ_CFG0     72 u32 GERROR_IRQ_CFG2           76 u32 STRTAB_BASE_CFG
//  80 u64 STRTAB_BASE        88 u64 CMDQ_BASE          96 u32 CMDQ_PROD   100 u32 CMDQ_CONS
// 104 u32 flags: bit 0 an ATC invalidation since the last completed CMD_SYNC timed out (the next CMD_SYNC is
//     CERROR_ATC_INV_SYNC); bit 1 an invalidation failed inside FastInval (the next CMD_SYNC is CERROR_ILL)
// 108 u32 reserved (0)   112 u64 command fetches (the fault plan's fetch ordinal)   120 u64 reserved (0)
// Between two register accesses every consumed command has been executed, so nothing else is pending. The caches are
// not in the image: the destination starts with what its engine holds and the host fills it again.
public sealed partial class SmmuV3
{
    /// <summary>Bytes of a state image of this version.</summary>
    public const int StateSize = 128;

    private const uint StateMagic = 0x33554D53; // "SMU3"
    private const ushort StateVersion = 1;
    private const uint FlagAtcFailed = 1, FlagInternalFailed = 2;

    /// <summary>Writes the SMMU's state image to <paramref name="destination"/> and
    /// returns its size, <see cref="StateSize"/>. The format is documented in docs/migration.md (a magic, a version, the
    /// image size, the ID registers the destination must match, then the registers, queue positions and pending errors).
    /// Take it between register accesses, with the VMM's MMIO path stopped.</summary>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is shorter than <see cref="StateSize"/>.</exception>
    /// <exception cref="InvalidOperationException">Called from inside a register write (an interrupt callback), or while
    /// a request to <see cref="SmmuOptions.DeviceTlbSink"/> is unanswered (a held CMD_SYNC is not in the image: wait for
    /// the answers or their time-out).</exception>
    /// <exception cref="ObjectDisposedException">The SMMU is disposed.</exception>
    public int SaveState(Span<byte> destination)
    {
        using Lock.Scope gate = _core.Gate.EnterScope();
        _core.ThrowIfDisposed(this);
        StateImage.CheckDestination(destination, StateSize, "SMMUv3");

        _core.ThrowIfRunning();
        _core.ThrowIfDeviceTlbOutstanding();
        Span<byte> s = destination[..StateSize];
        s.Clear();
        StateImage.WriteHeader(s, StateMagic, StateVersion, StateSize);
        for (int i = 0; i < 6; i++)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(s[(8 + (4 * i))..], _idr[i]);
        }

        BinaryPrimitives.WriteUInt32LittleEndian(s[32..], _cr0);
        BinaryPrimitives.WriteUInt32LittleEndian(s[36..], _cr1);
        BinaryPrimitives.WriteUInt32LittleEndian(s[40..], _cr2);
        BinaryPrimitives.WriteUInt32LittleEndian(s[44..], _gbpa);
        BinaryPrimitives.WriteUInt32LittleEndian(s[48..], _irqCtrl);
        BinaryPrimitives.WriteUInt32LittleEndian(s[52..], _gerror);
        BinaryPrimitives.WriteUInt32LittleEndian(s[56..], _gerrorn);
        BinaryPrimitives.WriteUInt32LittleEndian(s[60..], _gerrorIrqCfg1);
        BinaryPrimitives.WriteUInt64LittleEndian(s[64..], _gerrorIrqCfg0);
        BinaryPrimitives.WriteUInt32LittleEndian(s[72..], _gerrorIrqCfg2);
        BinaryPrimitives.WriteUInt32LittleEndian(s[76..], _strtabBaseCfg);
        BinaryPrimitives.WriteUInt64LittleEndian(s[80..], _strtabBase);
        BinaryPrimitives.WriteUInt64LittleEndian(s[88..], _cmdqBase);
        BinaryPrimitives.WriteUInt32LittleEndian(s[96..], _cmdqProd);
        BinaryPrimitives.WriteUInt32LittleEndian(s[100..], _cmdqCons);
        BinaryPrimitives.WriteUInt32LittleEndian(s[104..], (_atcFailed ? FlagAtcFailed : 0) | (_internalFailed ? FlagInternalFailed : 0));
        BinaryPrimitives.WriteUInt64LittleEndian(s[112..], _core.Fetches);
        return StateSize;
    }

    /// <summary>Replaces the SMMU's registers and queue state with the image in <paramref name="image"/> (from
    /// <see cref="SaveState"/> of an SMMU with the same options), so that the guest's command queue continues exactly where
    /// the source stopped. Nothing is consumed and no interrupt is sent by the restore itself; the caches are not touched.
    /// The image is checked whole before anything changes: a bad image leaves the SMMU as it was.</summary>
    /// <exception cref="ArgumentException">The image is short, has another magic, version or size, was saved by an SMMU
    /// with other ID registers, or holds a value no SMMU can be in (a bit outside a register's implemented bits, a
    /// non-zero reserved field).</exception>
    /// <exception cref="InvalidOperationException">Called from inside a register write (an interrupt callback).</exception>
    /// <exception cref="ObjectDisposedException">The SMMU is disposed.</exception>
    public void RestoreState(ReadOnlySpan<byte> image)
    {
        using Lock.Scope gate = _core.Gate.EnterScope();
        _core.ThrowIfDisposed(this);
        _core.ThrowIfRunning();
        StateImage.CheckHeader(image, StateMagic, StateVersion, StateSize, "SMMUv3");

        for (int i = 0; i < 6; i++)
        {
            if (StateImage.U32(image, 8 + (4 * i)) != _idr[i])
            {
                ThrowHelper.Argument(nameof(image), $"the image is from an SMMU with other ID registers (IDR{i})");
            }
        }

        uint cr0 = StateImage.U32(image, 32), cr1 = StateImage.U32(image, 36), cr2 = StateImage.U32(image, 40), gbpa = StateImage.U32(image, 44), irqCtrl = StateImage.U32(image, 48);
        uint gerror = StateImage.U32(image, 52), gerrorn = StateImage.U32(image, 56), cfg2 = StateImage.U32(image, 72), strtabCfg = StateImage.U32(image, 76);
        uint prod = StateImage.U32(image, 96), cons = StateImage.U32(image, 100), flags = StateImage.U32(image, 104);
        ulong cfg0 = StateImage.U64(image, 64), strtab = StateImage.U64(image, 80), cmdqBase = StateImage.U64(image, 88);
        uint cr0Bits = Cr0SmmuEn | Cr0EvtqEn | Cr0CmdqEn | Cr0AtsChk | (_features.Pri ? Cr0PriqEn : 0);
        uint irqBits = IrqGerrorEn | IrqEvtqEn | (_features.Pri ? IrqPriqEn : 0);
        bool valid = (cr0 & ~cr0Bits) == 0 && (cr1 & ~0xFFFu) == 0 && (cr2 & ~0x7u) == 0 && (gbpa & ~0x0010_3FFFu) == 0 &&
                     (irqCtrl & ~irqBits) == 0 && (gerror & ~GerrorDefined) == 0 && (gerrorn & ~GerrorDefined) == 0 &&
                     (cfg0 & ~(_features.Msi ? MsiAddressMask : 0)) == 0 && (cfg2 & ~(_features.Msi ? 0x3Fu : 0)) == 0 &&
                     (_features.Msi || StateImage.U32(image, 60) == 0) && (strtabCfg & ~0x3_07FFu) == 0 && (strtab & ~StrtabBaseMask) == 0 &&
                     (cmdqBase & ~CmdqBaseMask) == 0 && (prod & ~0xF_FFFFu) == 0 && (cons & ~(0xF_FFFFu | ConsErrMask)) == 0 &&
                     (flags & ~(FlagAtcFailed | FlagInternalFailed)) == 0 && StateImage.U32(image, 108) == 0 && StateImage.U64(image, 120) == 0;
        if (!valid)
        {
            ThrowHelper.Argument(nameof(image), "the SMMUv3 state image holds a value no SMMU can be in");
        }

        _cr0 = cr0;
        _cr1 = cr1;
        _cr2 = cr2;
        _gbpa = gbpa;
        _irqCtrl = irqCtrl;
        _gerror = gerror;
        _gerrorn = gerrorn;
        _gerrorIrqCfg0 = cfg0;
        _gerrorIrqCfg1 = StateImage.U32(image, 60);
        _gerrorIrqCfg2 = cfg2;
        _strtabBase = strtab;
        _strtabBaseCfg = strtabCfg;
        _cmdqBase = cmdqBase;
        _cmdqProd = prod;
        _cmdqCons = cons;
        _atcFailed = (flags & FlagAtcFailed) != 0;
        _internalFailed = (flags & FlagInternalFailed) != 0;
        _core.Fetches = StateImage.U64(image, 112);
        _holding = _stalled = false;
        _heldSync = default;
        _core.DropDeviceTlbRequests();
    }

    /// <summary>Returns the SMMU to its power-on state: every register at its reset value (all 0; CMDQ_BASE.LOG2SIZE
    /// reads IDR1.CMDQS as after construction), no pending command-error marks, the fetch ordinal at 0. With its own
    /// engine the SMMU also empties the caches; a caller's engine, which other units may share, is left to its owner.
    /// <see cref="InternalErrors"/> is a host diagnostic and is kept.</summary>
    /// <exception cref="InvalidOperationException">Called from inside a register write (an interrupt callback).</exception>
    /// <exception cref="ObjectDisposedException">The SMMU is disposed.</exception>
    public void Reset()
    {
        using Lock.Scope gate = _core.Gate.EnterScope();
        _core.ThrowIfDisposed(this);
        _core.ThrowIfRunning();
        _cr0 = _cr1 = _cr2 = _gbpa = _irqCtrl = _gerror = _gerrorn = 0;
        _gerrorIrqCfg0 = 0;
        _gerrorIrqCfg1 = _gerrorIrqCfg2 = 0;
        _strtabBase = 0;
        _strtabBaseCfg = 0;
        _cmdqBase = (uint)_cmdqMaxLog2 & 0x1F;
        _cmdqProd = _cmdqCons = 0;
        _atcFailed = _internalFailed = false;
        _holding = _stalled = false;
        _heldSync = default;
        _core.Reset();
    }
}
