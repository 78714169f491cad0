using System.Runtime.CompilerServices;
using FastInval.AmdVi;
using static FastInval.AmdVi.AmdViCommandLayout;

namespace FastInval.Tests.AmdVi;

/// <summary>Sizes, byte order and the one-definition property of the AMD-Vi formats: the builders, the accessors and the
/// layout constants agree, and the fields of each command are disjoint.</summary>
public class AmdViLayoutTests
{
    [Fact]
    public void Entries_Are16BlittableBytes()
    {
        Assert.Equal(16, Unsafe.SizeOf<AmdViCommand>());
        Assert.Equal(16, Unsafe.SizeOf<AmdViEvent>());
        Assert.False(RuntimeHelpers.IsReferenceOrContainsReferences<AmdViCommand>());
        Assert.False(RuntimeHelpers.IsReferenceOrContainsReferences<AmdViEvent>());
    }

    [Fact]
    public void Command_IsTwoLittleEndianQuadwords_WithTheOpcodeInDword1Bits31To28()
    {
        var c = AmdViCommand.InvalidateDevTabEntry(0x1234);
        byte[] bytes = new byte[16];
        c.Write(bytes);
        Assert.Equal(new byte[] { 0x34, 0x12, 0, 0, 0, 0, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0 }, bytes);
        Assert.Equal(c, AmdViCommand.Read(bytes));
        Assert.Throws<ArgumentException>(() => AmdViCommand.Read(new byte[15]));
        Assert.Throws<ArgumentException>(() => c.Write(new byte[15]));
    }

    [Fact]
    public void IllegalCommandEvent_IsCode5ThenTheAddress()
    {
        byte[] bytes = new byte[16];
        AmdViEvent.IllegalCommand(0x1234_5670).Write(bytes);
        Assert.Equal(new byte[] { 0, 0, 0, 0, 0, 0, 0, 0x50, 0x70, 0x56, 0x34, 0x12, 0, 0, 0, 0 }, bytes);
        Assert.Equal(AmdViEventCode.IllegalCommandError, AmdViEvent.Read(bytes).Code);
    }

    [Fact]
    public void Events_FieldsRoundTrip()
    {
        AmdViEvent hw = AmdViEvent.CommandHardwareError(AmdViHardwareErrorType.TargetAbort, 0xABC0);
        Assert.Equal((AmdViEventCode.CommandHardwareError, AmdViHardwareErrorType.TargetAbort, 0xABC0UL), (hw.Code, hw.HardwareErrorType, hw.Address));
        Assert.Equal(0x64UL << 56, hw.Qword0);
        AmdViEvent to = AmdViEvent.IotlbInvalidationTimeout(0xBEEF, 0x4_0017);
        Assert.Equal((AmdViEventCode.IotlbInvalidationTimeout, (ushort)0xBEEF, 0x4_0010UL), (to.Code, to.DeviceId, to.Address));
    }

    [Fact]
    public void Builders_SetExactlyTheirFields()
    {
        var w = AmdViCommand.CompletionWait(0xF_FFFF_FFFF_FFF8, 0xDEAD, store: true, interrupt: true, flush: true);
        Assert.Equal((0x1UL << OpcodeShift) | StoreMask | InterruptMask | FlushMask | StoreAddressMask, w.Qword0);
        Assert.Equal((true, true, true, 0xF_FFFF_FFFF_FFF8UL, 0xDEADUL), (w.Store, w.Interrupt, w.Flush, w.StoreAddress, w.StoreData));
        var p = AmdViCommand.InvalidateIommuPages(0xFFFF, ulong.MaxValue, size: true, pde: true, pasid: 0xF_FFFF);
        Assert.Equal((0x3UL << OpcodeShift) | PasidMask | DomainIdMask, p.Qword0);
        Assert.Equal(AddressMask | SizeMask | PdeMask | GuestMask, p.Qword1);
        Assert.Equal(((ushort)0xFFFF, 0xF_FFFFu, true, true, true), (p.DomainId, p.PagesPasid, p.SizeBit, p.Pde, p.Guest));
        var t = AmdViCommand.InvalidateIotlbPages(0xFFFF, ulong.MaxValue, size: true, pasid: 0xF_FFFF, maxPending: 0xFF, queueId: 0xFFFF);
        Assert.Equal((0x4UL << OpcodeShift) | 0x0FFF_FFFF_FFFF_FFFFUL, t.Qword0); // every bit of 59:0 is a field
        Assert.Equal(AddressMask | SizeMask | GuestMask, t.Qword1);
        Assert.Equal(((byte)0xFF, (ushort)0xFFFF, 0), (t.MaxPending, t.QueueId, t.IotlbType));
        Assert.Equal((byte)AmdViOpcode.InvalidateIommuAll, AmdViCommand.InvalidateIommuAll().Opcode);
        Assert.Equal(0UL, AmdViCommand.InvalidateIommuAll().Qword1);
    }

    [Fact]
    public void FieldsOfEachCommand_AreDisjointAndOutsideTheOpcode()
    {
        ulong[][] qw0 =
        [
            [StoreMask, InterruptMask, FlushMask, StoreAddressMask],
            [PasidMask, DomainIdMask],
            [DeviceIdMask, IotlbPasidMiddleMask, MaxPendingMask, QueueIdMask, IotlbPasidLowMask, IotlbPasidHighMask],
        ];
        ulong[][] qw1 = [[SizeMask, PdeMask, GuestMask, AddressMask], [SizeMask, GuestMask, IotlbTypeMask, AddressMask]];
        foreach (ulong[] set in qw0.Concat(qw1))
        {
            ulong seen = 0;
            foreach (ulong m in set)
            {
                Assert.Equal(0UL, seen & m);
                seen |= m;
            }
        }

        foreach (ulong[] set in qw0)
        {
            Assert.All(set, m => Assert.Equal(0UL, m & OpcodeMask));
        }
    }
}
