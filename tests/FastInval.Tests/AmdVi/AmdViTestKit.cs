using FastInval.AmdVi;
using FastInval.Tests.Memory;
using static FastInval.AmdVi.AmdViRegisters;

namespace FastInval.Tests.AmdVi;

/// <summary>An AMD-Vi unit with a 256-entry command buffer, a 256-entry event log and a completion-store page in guest
/// memory, set up the way Linux's <c>iommu_enable_command_buffer</c> / <c>iommu_enable_event_buffer</c> do, plus the
/// recorded interrupts.</summary>
internal sealed class AmdViRig : IDisposable
{
    public const ulong BufferBase = 0x40_0000;
    public const ulong EventBase = 0x50_0000;
    public const ulong StoreBase = 0x60_0000;
    public const ulong Unmapped = 0x90_0000;

    public AmdViRig(AmdViOptions? options = null, bool enable = true, ulong control = ControlEventLogEn | ControlEventIntEn | ControlComWaitIntEn,
        GuestMemoryKind kind = GuestMemoryKind.Managed)
    {
        Memory = new GuestMemory();
        Space = GuestSpaces.Over(kind, Memory, (BufferBase, Buffer), (EventBase, Events), (StoreBase, Store));
        options ??= new AmdViOptions();
        Unit = new AmdViIommu(Space, new AmdViOptions
        {
            GuestTranslation = options.GuestTranslation,
            DeviceTlb = options.DeviceTlb,
            InvalidateAll = options.InvalidateAll,
            FaultPlan = options.FaultPlan,
            Engine = options.Engine,
            DeviceTlbSink = options.DeviceTlbSink,
            Interrupt = () =>
            {
                Interrupts++;
                StatusAtInterrupt.Add(Status);
                HeadAtInterrupt.Add(Head);
                OnInterrupt?.Invoke();
            },
        });
        Unit.WriteRegister(CommandBufferBase, BufferBase | (8UL << RingLengthShift), 8);
        Unit.WriteRegister(EventLogBase, EventBase | (8UL << RingLengthShift), 8);
        if (enable)
        {
            Unit.WriteRegister(Control, ControlIommuEn | ControlCmdBufEn | control, 8);
        }
    }

    public GuestMemory Memory { get; }

    public GuestAddressSpace Space { get; }

    public byte[] Buffer { get; } = GuestSpaces.Pinned(4096);

    public byte[] Events { get; } = GuestSpaces.Pinned(4096);

    public byte[] Store { get; } = GuestSpaces.Pinned(4096);

    public AmdViIommu Unit { get; }

    public InvalidationEngine Engine => Unit.Engine;

    public int Interrupts { get; private set; }

    public List<ulong> StatusAtInterrupt { get; } = [];

    public List<ulong> HeadAtInterrupt { get; } = [];

    public Action? OnInterrupt { get; set; }

    public ulong Head => Unit.ReadRegister(CommandBufferHead, 8);

    public ulong Tail => Unit.ReadRegister(CommandBufferTail, 8);

    public ulong Status => Unit.ReadRegister(AmdViRegisters.Status, 8);

    public bool Running => (Status & StatusCmdBufRun) != 0;

    public ulong EventTail => Unit.ReadRegister(EventLogTail, 8);

    /// <summary>Writes commands at the tail onward (with wrap) and publishes them with one 4-byte tail write.</summary>
    public void Submit(params AmdViCommand[] commands)
    {
        ulong tail = Tail;
        foreach (AmdViCommand c in commands)
        {
            c.Write(Buffer.AsSpan((int)tail, 16));
            tail = (tail + 16) % 4096;
        }

        Unit.WriteRegister(CommandBufferTail, tail, 4);
    }

    /// <summary>The event-log entries from 0 up to the tail.</summary>
    public List<AmdViEvent> EventLog()
    {
        var list = new List<AmdViEvent>();
        for (ulong o = 0; o < EventTail; o += 16)
        {
            list.Add(AmdViEvent.Read(Events.AsSpan((int)o, 16)));
        }

        return list;
    }

    public ulong StoreAt(int offset) => BitConverter.ToUInt64(Store, offset);

    /// <summary>Software's restart: clear CmdBufEn, optionally move the head, set CmdBufEn again.</summary>
    public void Restart(ulong? head = null)
    {
        ulong control = Unit.ReadRegister(Control, 8);
        Unit.WriteRegister(Control, control & ~ControlCmdBufEn, 8);
        if (head is ulong h)
        {
            Unit.WriteRegister(CommandBufferHead, h, 4);
        }

        Unit.WriteRegister(Control, control | ControlCmdBufEn, 8);
    }

    public void Dispose() => Unit.Dispose();
}
