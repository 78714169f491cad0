using FastInval.AmdVi;
using FastInval.Reference;
using FastInval.Reference.AmdVi;
using FastInval.Reference.Scenarios;
using FastInval.Reference.Vtd;
using static FastInval.AmdVi.AmdViRegisters;

namespace FastInval.Tests.AmdVi;

/// <summary>
/// The Linux driver model (<see cref="LinuxAmdViModel"/>) against <see cref="AmdViIommu"/> and the reference model in
/// lockstep, under random fault plans: both answer every driver call alike (return codes, events read by the handler,
/// registers, caches), and the calls end as Linux expects: every completion wait returns 0 until a command error; current
/// Linux then times out on every later wait (the buffer stays stopped), the 2009 recovery resets the buffer and every
/// call returns 0; a device-TLB time-out is an IOTLB_INV_TIMEOUT the handler reads, and the wait still completes.
/// </summary>
public class LinuxDriverTests
{
    private const ulong BufferAddress = 0x40_0000;
    private const ulong EventAddress = 0x50_0000;
    private const ulong SemaphoreAddress = 0x60_0000;
    private static readonly ushort[] Domains = [1, 2, 3];
    private static readonly ushort[] Devices = [0x10, 0x11, 0x12, 0x13];

    private sealed class Side : IDisposable
    {
        public Side(bool fast, FaultPlan plan, bool resetOnError, bool invalidateAll = true)
        {
            var options = new AmdViOptions { InvalidateAll = invalidateAll };
            Func<uint, int, ulong> read;
            Action<uint, ulong, int> write;
            if (fast)
            {
                var memory = new GuestMemory();
                memory.Map(BufferAddress, Buffer);
                memory.Map(EventAddress, Events);
                memory.Map(SemaphoreAddress, Semaphore);
                Fast = new AmdViIommu(memory, new AmdViOptions
                {
                    InvalidateAll = invalidateAll,
                    FaultPlan = plan,
                    Engine = new EngineOptions { IotlbCapacity = 4096 },
                    Interrupt = () => Driver!.Interrupt(),
                });
                read = Fast.ReadRegister;
                write = Fast.WriteRegister;
            }
            else
            {
                var memory = new ReferenceGuestMemory();
                memory.Map(BufferAddress, Buffer);
                memory.Map(EventAddress, Events);
                memory.Map(SemaphoreAddress, Semaphore);
                Reference = new ReferenceAmdVi(memory, options, new ReferenceEngine(plan)) { OnInterrupt = () => Driver!.Interrupt() };
                read = Reference.Read;
                write = Reference.Write;
            }

            Read = read;
            Driver = new LinuxAmdViModel(read, write, Buffer, BufferAddress, Events, EventAddress, Semaphore, SemaphoreAddress, invalidateAll)
            {
                ResetOnCommandError = resetOnError,
                Domains = Domains,
                Devices = Devices,
            };
        }

        public byte[] Buffer { get; } = new byte[LinuxAmdViModel.RingBytes];

        public byte[] Events { get; } = new byte[LinuxAmdViModel.RingBytes];

        public byte[] Semaphore { get; } = new byte[4096];

        public AmdViIommu? Fast { get; }

        public ReferenceAmdVi? Reference { get; }

        public LinuxAmdViModel Driver { get; }

        public Func<uint, int, ulong> Read { get; }

        public bool Running => (Read(AmdViRegisters.Status, 8) & StatusCmdBufRun) != 0;

        public void Dispose() => Fast?.Dispose();
    }

    private static void FillBoth(Side fast, Side reference, Random r)
    {
        for (int i = 0; i < 16; i++)
        {
            ushort dom = Domains[r.Next(Domains.Length)];
            ulong page = (ulong)r.Next(0, 64) << 12;
            TranslationEntry t = TranslationEntry.Leaf(TranslationStage.Stage2, dom, AddressSpace.None, page, page);
            fast.Fast!.Engine.Iotlb.Fill(t);
            reference.Reference!.Engine.FillIotlb(t);
            var atc = new DeviceTlbEntry(Devices[r.Next(Devices.Length)], AddressSpace.None, page, page);
            fast.Fast.Engine.DeviceTlb.Fill(atc);
            reference.Reference.Engine.FillDeviceTlb(atc);
            var config = new ConfigEntry(r.Next(2) == 0 ? ConfigKinds.Context : ConfigKinds.InterruptEntry, Devices[r.Next(Devices.Length)],
                AddressSpace.None, dom, 1);
            fast.Fast.Engine.ConfigCache.Fill(config);
            reference.Reference.Engine.FillConfig(config);
        }
    }

    private static int Call(Side side, int op, ushort dom, ushort dev, ulong page, ulong bytes) => op switch
    {
        0 or 1 or 2 => side.Driver.FlushPages(dom, page, bytes),
        3 or 4 => side.Driver.FlushPagesAndDevice(dom, dev, 32, page, bytes),
        5 => side.Driver.FlushDevice(dev),
        6 => side.Driver.FlushAllCaches(),
        _ => side.Driver.FlushPages(dom, page, bytes, staleReservedBit: true), // a recycled slot with a stale reserved bit
    };

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LinuxDriver_RandomUnmapsUnderFaultPlans_BothUnitsAgreeAndCallsEndAsLinuxExpects(bool resetOnError)
    {
        int waitTimeouts = 0, resets = 0, iotlbTimeouts = 0, hardwareErrors = 0, illegal = 0;
        for (int seed = 0; seed < 150; seed++)
        {
            var r = new Random(seed);
            var plan = new FaultPlan
            {
                Seed = (ulong)seed,
                TimeoutPerMillion = (uint)r.Next(0, 3) * 150_000,
                CompletionErrorPerMillion = (uint)r.Next(0, 2) * 100_000,
                FetchErrorOrdinals = r.Next(3) == 0 ? [(ulong)r.Next(2, 60)] : [],   // one at most: the recovery's own flush succeeds
            };
            using var fast = new Side(true, plan, resetOnError);
            using var reference = new Side(false, plan, resetOnError);
            Assert.Equal(fast.Driver.Enable(), reference.Driver.Enable());
            bool failed = !fast.Running;
            for (int call = 0; call < 12; call++)
            {
                FillBoth(fast, reference, r);
                int op = r.Next(0, 9);
                op = op == 8 ? (r.Next(3) == 0 ? 7 : 0) : op;
                ushort dom = Domains[r.Next(Domains.Length)], dev = Devices[r.Next(Devices.Length)];
                ulong page = (ulong)r.Next(0, 64) << 12, bytes = (ulong)r.Next(1, 17) << 12;
                int eventsBefore = fast.Driver.Events.Count;
                int a = Call(fast, op, dom, dev, page, bytes), b = Call(reference, op, dom, dev, page, bytes);
                string where = $"seed {seed} call {call} (op {op})";
                Assert.True(a == b, $"{where}: fast {a}, reference {b}");
                Assert.Equal(reference.Driver.Events, fast.Driver.Events);
                string? why = Differential.CompareCaches(fast.Fast!.Engine, reference.Reference!.Engine);
                Assert.True(why is null, $"{where}: {why}");
                foreach (uint offset in new[] { CommandBufferHead, CommandBufferTail, EventLogHead, EventLogTail, AmdViRegisters.Status, Control })
                {
                    Assert.Equal(reference.Read(offset, 8), fast.Read(offset, 8));
                }

                IEnumerable<AmdViEvent> fresh = fast.Driver.Events.Skip(eventsBefore);
                bool commandError = fresh.Any(e => e.Code is AmdViEventCode.IllegalCommandError or AmdViEventCode.CommandHardwareError);
                Assert.All(fresh, e => Assert.True(e.Code is AmdViEventCode.IllegalCommandError or AmdViEventCode.CommandHardwareError
                    or AmdViEventCode.IotlbInvalidationTimeout, $"{where}: {e}"));
                if (resetOnError)
                {
                    Assert.True(a == 0, $"{where}: the 2009 recovery still failed the call ({a})");
                    Assert.True(fast.Running, where);
                }
                else
                {
                    failed |= commandError;
                    Assert.True(failed ? a == -5 : a == 0, $"{where}: {a} (buffer stopped earlier: {failed})");
                    Assert.Equal(!failed, fast.Running);
                }

                foreach (AmdViEvent e in fresh.Where(e => e.Code == AmdViEventCode.IllegalCommandError && !resetOnError))
                {
                    // Linux dumps the command at the reported address: it is the one with the stale reserved bit.
                    AmdViCommand dumped = AmdViCommand.Read(fast.Buffer.AsSpan((int)(e.Address - BufferAddress), 16));
                    Assert.Equal((byte)AmdViOpcode.InvalidateIommuPages, dumped.Opcode);
                    Assert.NotEqual(0UL, dumped.Qword1 & 0x8);
                }
            }

            Assert.Equal(0, fast.Driver.EmptyEvents);       // every event was in memory before the interrupt
            waitTimeouts += fast.Driver.WaitTimeouts;
            resets += fast.Driver.Resets;
            iotlbTimeouts += fast.Driver.Events.Count(e => e.Code == AmdViEventCode.IotlbInvalidationTimeout);
            hardwareErrors += fast.Driver.Events.Count(e => e.Code == AmdViEventCode.CommandHardwareError);
            illegal += fast.Driver.Events.Count(e => e.Code == AmdViEventCode.IllegalCommandError);
        }

        // Every path was taken somewhere in the run.
        Assert.True(iotlbTimeouts > 0 && hardwareErrors > 0 && illegal > 0,
            $"IOTLB_INV_TIMEOUT {iotlbTimeouts}, COMMAND_HARDWARE_ERROR {hardwareErrors}, ILLEGAL_COMMAND_ERROR {illegal}");
        // (With the recovery, a wait inside the handler's own flush may still time out when the fetch error hits it; the
        // handler then goes round again and the call itself returns 0, as asserted above.)
        Assert.True(resetOnError ? resets > 0 : waitTimeouts > 0 && resets == 0, $"resets {resets}, wait time-outs {waitTimeouts}");
    }

    [Fact]
    public void CompletionWait_AfterAStaleReservedBit_TimesOutAndTheHandlerReadsTheIllegalCommand()
    {
        using var side = new Side(true, FaultPlan.None, resetOnError: false);
        Assert.Equal(0, side.Driver.Enable());
        side.Fast!.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, 1, AddressSpace.None, 0x5000, 0x5000));
        ulong tail = side.Read(CommandBufferTail, 8);
        Assert.Equal(-5, side.Driver.FlushPages(1, 0x5000, 0x1000, staleReservedBit: true));
        Assert.Equal(1, side.Driver.WaitTimeouts);
        Assert.Equal([AmdViEvent.IllegalCommand(BufferAddress + tail)], side.Driver.Events);
        Assert.False(side.Running);
        Assert.Equal(tail, side.Read(CommandBufferHead, 8));   // the head stays on the illegal command
        Assert.True(side.Fast.Engine.Iotlb.TryLookup(TranslationStage.Stage2, 1, AddressSpace.None, 0x5000, out _));
        Assert.Equal(-5, side.Driver.FlushDevice(0x10));        // current Linux never restarts the buffer
        Assert.Equal(0UL, side.Read(AmdViRegisters.Status, 8) & (StatusEventLogInt | StatusEventOverflow)); // the handler cleared them
    }

    [Fact]
    public void ResetOnCommandError_ResetsTheBufferFlushesEverythingAndTheWaiterReturns0()
    {
        using var side = new Side(true, FaultPlan.None, resetOnError: true);
        Assert.Equal(0, side.Driver.Enable());
        side.Fast!.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, 1, AddressSpace.None, 0x5000, 0x5000));
        side.Fast.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage2, 2, AddressSpace.None, 0x9000, 0x9000));
        Assert.Equal(0, side.Driver.FlushPages(1, 0x5000, 0x1000, staleReservedBit: true));
        Assert.Equal(1, side.Driver.Resets);
        Assert.Equal(0, side.Fast.Engine.Iotlb.Count);          // INVALIDATE_IOMMU_ALL took both
        Assert.True(side.Running);
        Assert.Equal(32UL, side.Read(CommandBufferHead, 8));    // after the reset: INVALIDATE_IOMMU_ALL and its wait
        Assert.Equal(0, side.Driver.FlushPages(2, 0x9000, 0x1000));
    }

    [Fact]
    public void DeviceTlbTimeout_IsAnIotlbInvTimeoutTheHandlerReads_AndTheWaitCompletes()
    {
        var plan = new FaultPlan { TimeoutSourceIds = [0x11] };
        using var side = new Side(true, plan, resetOnError: false);
        Assert.Equal(0, side.Driver.Enable());
        side.Fast!.Engine.DeviceTlb.Fill(new DeviceTlbEntry(0x11, AddressSpace.None, 0x3000, 0x3000));
        side.Fast.Engine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, AddressSpace.None, 0x3000, 0x3000));
        ulong tail = side.Read(CommandBufferTail, 8);
        Assert.Equal(0, side.Driver.FlushPagesAndDevice(1, 0x11, 32, 0x3000, 0x1000));
        Assert.Equal(0, side.Driver.FlushPagesAndDevice(1, 0x10, 32, 0x3000, 0x1000));
        Assert.Equal([AmdViEvent.IotlbInvalidationTimeout(0x11, BufferAddress + tail + 16)], side.Driver.Events);
        Assert.True(side.Fast.Engine.DeviceTlb.TryLookup(0x11, AddressSpace.None, 0x3000, out _));   // the silent device keeps it
        Assert.False(side.Fast.Engine.DeviceTlb.TryLookup(0x10, AddressSpace.None, 0x3000, out _));
        Assert.True(side.Running);
    }

    [Fact]
    public void Enable_WithoutInvalidateAll_FlushesEveryDeviceAndDomainOneByOne()
    {
        using var fast = new Side(true, FaultPlan.None, resetOnError: false, invalidateAll: false);
        Assert.Equal(0, fast.Driver.Enable());
        // Four DTE flushes, four IRT flushes, three domain flushes and the completion wait.
        Assert.Equal((ulong)(4 + 4 + 3 + 1) * 16, fast.Read(CommandBufferHead, 8));
        Assert.Equal(1UL, BitConverter.ToUInt64(fast.Semaphore, 0));
        Assert.Equal(ControlIommuEn | ControlCmdBufEn | ControlEventLogEn | ControlEventIntEn | (4UL << ControlInvTimeOutShift),
            fast.Read(Control, 8));
        Assert.Equal(0x0900_0000_0040_0000UL, fast.Read(CommandBufferBase, 8));
    }
}
