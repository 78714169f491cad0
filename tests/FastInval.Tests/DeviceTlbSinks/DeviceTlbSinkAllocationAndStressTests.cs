using System.Collections.Concurrent;
using FastInval.Smmu;
using FastInval.Tests.Smmu;
using FastInval.Tests.Vtd;
using FastInval.Vtd;

namespace FastInval.Tests.DeviceTlbSinks;

/// <summary>The sink path allocates nothing per request in steady state, and under answers from another thread with
/// random delays every wait completes with nothing of its devices left cached.</summary>
public sealed class DeviceTlbSinkAllocationAndStressTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void VtdRequestsHeld_WaitsAndAnswersAllocateNothingAfterWarmUp(bool answerLater)
    {
        var buffered = new BufferedSink();
        var immediate = new ImmediateSink();
        IDeviceTlbSink sink = answerLater ? buffered : immediate;
        // The system clock with a real time-out: the one timer is created during warm-up and never re-armed by answers.
        using var rig = new VtdRig(new VtdOptions { DeviceTlbSink = new DeviceTlbSinkOptions { Sink = sink, Timeout = TimeSpan.FromMinutes(5) } });
        rig.Msis.Capacity = 1 << 16;
        rig.Enable(wide: true, qs: 2);
        int slots = rig.Slots, tail = 0, wrong = 0; // no Assert inside the measured region: xunit's comparers allocate

        void Round()
        {
            for (int i = 0; i < 16; i++)
            {
                rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry((uint)(0x10 + i), AddressSpace.None, 0x4000, 0x4000));
                rig.Put(tail, Dsc.DevTlb((ushort)(0x10 + i), 0x4000));
                tail = (tail + 1) % slots;
            }

            rig.Put(tail, VtdRig.StatusWait(0, 2, iflag: true));
            tail = (tail + 1) % slots;
            rig.Unit.WriteRegister(Reg.Iqt, (uint)(tail * rig.Width), 4);
            if (answerLater)
            {
                wrong += tail == rig.Head ? 1 : 0; // held on the wait
                buffered.AnswerAllReversed();
            }

            wrong += tail != rig.Head ? 1 : 0;
            rig.Unit.WriteRegister(Reg.Ics, Reg.Iwc, 4);
        }

        for (int warm = 0; warm < 40; warm++)
        {
            Round();
        }

        rig.Msis.Capacity = rig.Msis.Count + 1024;
        long total = 0;
        for (int round = 0; round < 50; round++)
        {
            total += AllocationMeter.Measure(Round);
        }

        Assert.Equal(0, total);
        Assert.Equal(0, wrong);
        Assert.Equal(0u, rig.Fsts);
    }

    [Fact]
    public void SmmuRequestsHeldSyncsAnd_AnswersAllocateNothingAfterWarmUp()
    {
        var sink = new BufferedSink();
        using var rig = new SmmuRig(log2Size: 8, options: new SmmuOptions { DeviceTlbSink = new DeviceTlbSinkOptions { Sink = sink } });
        rig.Msis.Capacity = rig.ConsAtMsi.Capacity = 1 << 16;
        SmmuCommand[] commands = new SmmuCommand[17];
        for (int i = 0; i < 16; i++)
        {
            commands[i] = Cmd.AtcInv((uint)(0x10 + i), 0x4000, 0);
        }

        commands[16] = SmmuRig.SyncIrq(SmmuRig.MsiRegion, 3);
        int wrong = 0;

        void Round()
        {
            for (int i = 0; i < 16; i++)
            {
                rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry((uint)(0x10 + i), AddressSpace.None, 0x4000, 0x4000));
            }

            rig.Submit(commands);
            wrong += rig.Prod == (rig.Cons & 0x1FF) ? 1 : 0; // held on the CMD_SYNC
            sink.AnswerAllReversed();
            wrong += rig.Prod != (rig.Cons & 0x1FF) ? 1 : 0;
        }

        for (int warm = 0; warm < 40; warm++)
        {
            Round();
        }

        long total = 0;
        for (int round = 0; round < 50; round++)
        {
            total += AllocationMeter.Measure(Round);
        }

        Assert.Equal(0, total);
        Assert.Equal(0, wrong);
        Assert.Equal(0u, rig.ConsError);
    }

    /// <summary>A device on its own thread that answers each request after a random short delay, in a shuffled
    /// order.</summary>
    private sealed class SlowDevice : IDeviceTlbSink, IDisposable
    {
        private readonly BlockingCollection<(ulong Ticket, IDeviceTlbCompletion Completion)> _inbox = [];
        private readonly Thread _thread;

        public SlowDevice(int seed)
        {
            _thread = new Thread(() =>
            {
                var random = new Random(seed);
                var pending = new List<(ulong, IDeviceTlbCompletion)>();
                while (!_inbox.IsCompleted)
                {
                    if (_inbox.TryTake(out var item, 1))
                    {
                        pending.Add(item);
                    }

                    while (pending.Count > 0 && (random.Next(4) == 0 || _inbox.Count == 0))
                    {
                        int pick = random.Next(pending.Count);
                        (ulong ticket, IDeviceTlbCompletion completion) = pending[pick];
                        pending.RemoveAt(pick);
                        if (!completion.Complete(ticket, DeviceTlbFault.None))
                        {
                            Failures++;
                        }

                        if (random.Next(8) == 0)
                        {
                            Thread.Yield();
                        }
                    }
                }
            })
            { IsBackground = true, Name = "slow device" };
            _thread.Start();
        }

        public int Failures { get; private set; }

        public void Submit(in DeviceTlbRequest request, IDeviceTlbCompletion completion) => _inbox.Add((request.Ticket, completion));

        public void Dispose()
        {
            _inbox.CompleteAdding();
            _thread.Join();
        }
    }

    [Fact]
    public void Vtd_WaitsCompleteOnlyAfterTheirDevicesAnswerAndLeaveNothingOfThemCached()
    {
        using var device = new SlowDevice(seed: 11);
        using var rig = new VtdRig(new VtdOptions { DeviceTlbSink = new DeviceTlbSinkOptions { Sink = device, Timeout = TimeSpan.FromMinutes(1) } },
            unmaskInterrupts: false);
        rig.Enable(wide: true, qs: 2);
        var random = new Random(5);
        int slots = rig.Slots, tail = 0;
        for (int round = 1; round <= 400; round++)
        {
            int count = random.Next(1, 24);
            var sids = new List<uint>();
            for (int i = 0; i < count; i++)
            {
                uint sid = (uint)random.Next(0x100, 0x200);
                sids.Add(sid);
                rig.Engine.DeviceTlb.Fill(new DeviceTlbEntry(sid, AddressSpace.None, 0x7000, 0x7000));
                rig.Put(tail, Dsc.DevTlb((ushort)sid, 0x7000));
                tail = (tail + 1) % slots;
            }

            rig.Put(tail, VtdRig.StatusWait(0, (uint)round));
            tail = (tail + 1) % slots;
            rig.Unit.WriteRegister(Reg.Iqt, (uint)(tail * rig.Width), 4);

            // The guest polls its status word, as Linux's qi_submit_sync does.
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (Volatile.Read(ref rig.Status[0]) != (byte)round || BitConverter.ToUInt32(rig.Status, 0) != (uint)round)
            {
                Assert.True(DateTime.UtcNow < deadline, $"round {round}: the wait never completed");
                Thread.Yield();
            }

            foreach (uint sid in sids)
            {
                Assert.False(rig.Engine.DeviceTlb.TryLookup(sid, AddressSpace.None, 0x7000, out _), $"round {round}: sid {sid:x} still cached after its wait");
            }

            Assert.Equal(tail, rig.Head);
        }

        Assert.Equal(0u, rig.Fsts);
        Assert.Equal(0, device.Failures);
    }
}
