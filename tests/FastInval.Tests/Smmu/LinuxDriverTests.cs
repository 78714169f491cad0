using FastInval.Reference;
using FastInval.Reference.Scenarios;
using FastInval.Reference.Smmu;
using FastInval.Reference.Vtd;
using FastInval.Smmu;
using static FastInval.Smmu.SmmuRegisters;

namespace FastInval.Tests.Smmu;

/// <summary>
/// The Linux driver model against <see cref="SmmuV3"/> and the reference in lockstep, under random fault plans: every
/// batch completes as Linux expects (return 0, queue drained, no error left active, illegal commands skipped one for
/// one, aborts and ATC time-outs retried) and after every batch both units hold the same caches.
/// </summary>
public class LinuxDriverTests
{
    private const ulong QueueAddress = 0x40_0000;

    private sealed class Side : IDisposable
    {
        public Side(bool fast, SmmuOptions options, FaultPlan plan, int log2, bool msiPolling)
        {
            Queue = new byte[16 << log2];
            if (fast)
            {
                var memory = new GuestMemory();
                memory.Map(QueueAddress, Queue);
                Fast = new SmmuV3(memory, new SmmuOptions { Features = options.Features, FaultPlan = plan, Engine = new EngineOptions { IotlbCapacity = 4096 } });
                Driver = new LinuxCmdqModel(Fast.ReadRegister, Fast.WriteRegister, Queue, QueueAddress, log2, msiPolling);
            }
            else
            {
                var memory = new ReferenceGuestMemory();
                memory.Map(QueueAddress, Queue);
                Reference = new ReferenceSmmu(memory, new SmmuOptions { Features = options.Features }, new ReferenceEngine(plan));
                Driver = new LinuxCmdqModel(Reference.Read, Reference.Write, Queue, QueueAddress, log2, msiPolling);
            }

            Driver.Reset();
        }

        public byte[] Queue { get; }

        public SmmuV3? Fast { get; }

        public ReferenceSmmu? Reference { get; }

        public LinuxCmdqModel Driver { get; }

        public ulong Read(uint offset) => Fast?.ReadRegister(offset, 4) ?? Reference!.Read(offset, 4);

        public void Dispose() => Fast?.Dispose();
    }

    private static SmmuCommand RandomCommand(Random r)
    {
        ushort vmid = (ushort)r.Next(1, 3);
        ushort asid = (ushort)r.Next(1, 4);
        ulong page = (ulong)r.Next(0, 64) << 12;
        return r.Next(14) switch
        {
            0 or 1 or 2 => Cmd.NhVa(vmid, asid, page, leaf: r.Next(2) == 0),
            3 => Cmd.NhVa(vmid, asid, page, leaf: true, num: r.Next(0, 8), scale: r.Next(0, 3), ttl: 3, tg: 1),
            4 => Cmd.NhAsid(vmid, asid),
            5 => Cmd.NhVaa(vmid, page),
            6 => Cmd.S2Ipa(vmid, page),
            7 => Cmd.CfgiCd((uint)r.Next(0x10, 0x14), (uint)r.Next(0, 3)),
            8 => Cmd.CfgiSte((uint)r.Next(0x10, 0x14)),
            9 or 10 => Cmd.AtcInv((uint)r.Next(0x10, 0x14), page, r.Next(0, 4), r.Next(2) == 0 ? (uint)r.Next(0, 3) : null),
            11 => new SmmuCommand(0x7F, 0),                                   // illegal opcode
            12 => Cmd.NhVa(vmid, asid, page, num: 0, scale: 0, ttl: 0, tg: 1), // reserved range combination
            _ => new SmmuCommand(Cmd.CfgiSte(0x10).Dword0 | (1UL << 10), 1),  // SSec on the Non-secure queue
        };
    }

    private static void FillBoth(Side a, Side b, Random r)
    {
        for (int i = 0; i < 12; i++)
        {
            ushort vmid = (ushort)r.Next(1, 3);
            ulong page = (ulong)r.Next(0, 64) << 12;
            var s1 = TranslationEntry.Leaf(r.Next(4) == 0 ? TranslationStage.Stage2 : TranslationStage.Stage1, vmid, AddressSpace.None, page, page);
            if (s1.Stage == TranslationStage.Stage1)
            {
                s1 = TranslationEntry.Leaf(TranslationStage.Stage1, vmid, (uint)r.Next(1, 4), page, page);
            }

            a.Fast!.Engine.Iotlb.Fill(s1);
            b.Reference!.Engine.FillIotlb(s1);
            var atc = new DeviceTlbEntry((uint)r.Next(0x10, 0x14), r.Next(2) == 0 ? AddressSpace.None : (uint)r.Next(0, 3), page, page);
            a.Fast.Engine.DeviceTlb.Fill(atc);
            b.Reference.Engine.FillDeviceTlb(atc);
            var cd = new ConfigEntry(ConfigKinds.ContextDescriptor, (uint)r.Next(0x10, 0x14), (uint)r.Next(0, 3), vmid, 1);
            a.Fast.Engine.ConfigCache.Fill(cd);
            b.Reference.Engine.FillConfig(cd);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void LinuxIssueAndRecoveryUnderRandomFaultPlans_EndAsLinuxExpects(bool msiPolling)
    {
        int scenarios = 0, illegal = 0, aborts = 0, atcRetries = 0;
        for (int seed = 0; seed < 150; seed++)
        {
            var r = new Random(seed);
            var plan = new FaultPlan
            {
                Seed = (ulong)seed,
                TimeoutPerMillion = (uint)r.Next(0, 3) * 150_000,
                CompletionErrorPerMillion = (uint)r.Next(0, 2) * 100_000,
                FetchErrorOrdinals = [(ulong)r.Next(0, 40), (ulong)r.Next(0, 40)],
            };
            int log2 = r.Next(5, 8);
            using var fast = new Side(true, new SmmuOptions(), plan, log2, msiPolling);
            using var reference = new Side(false, new SmmuOptions(), plan, log2, msiPolling);
            for (int batch = 0; batch < 12; batch++)
            {
                FillBoth(fast, reference, r);
                var commands = new List<SmmuCommand>();
                int n = r.Next(1, 8);
                int expectedIllegal = 0;
                for (int i = 0; i < n; i++)
                {
                    SmmuCommand c = RandomCommand(r);
                    commands.Add(c);
                    expectedIllegal += SmmuCommandDecoder.Decode(c, new SmmuFeatures()).Error == SmmuCommandError.Illegal ? 1 : 0;
                }

                int skippedBefore = fast.Driver.IllegalSkipped;
                Assert.Equal(0, fast.Driver.IssueCmdList(commands));
                Assert.Equal(0, reference.Driver.IssueCmdList(commands));
                Assert.Equal(expectedIllegal, fast.Driver.IllegalSkipped - skippedBefore);
                Assert.Equal(fast.Read(CmdqProd) & 0xF_FFFF, fast.Read(CmdqCons) & 0xF_FFFF);
                Assert.Equal(fast.Read(Gerror), fast.Read(Gerrorn));
                string? why = Differential.CompareCaches(fast.Fast!.Engine, reference.Reference!.Engine);
                Assert.True(why is null, $"seed {seed} batch {batch}: {why}");
                Assert.Equal(reference.Read(CmdqCons), fast.Read(CmdqCons));
            }

            illegal += fast.Driver.IllegalSkipped;
            aborts += fast.Driver.AbortsRetried;
            atcRetries += fast.Driver.AtcSyncRetries;
            scenarios++;
        }

        // Every recovery path was taken somewhere in the run.
        Assert.Equal(150, scenarios);
        Assert.True(illegal > 0 && aborts > 0 && atcRetries > 0, $"illegal {illegal}, aborts {aborts}, ATC retries {atcRetries}");
    }

    [Fact]
    public void AtcTimeOut_LosesOnlyTheAtcInvalidationAndTheRetriedSyncCompletes()
    {
        var plan = new FaultPlan { TimeoutSourceIds = [0x10] };
        using var side = new Side(true, new SmmuOptions(), plan, 5, msiPolling: false);
        side.Fast!.Engine.DeviceTlb.Fill(new DeviceTlbEntry(0x10, AddressSpace.None, 0x1000, 0x1000));
        side.Fast.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, 0x1000, 0x1000));
        Assert.Equal(0, side.Driver.IssueCmdList([Cmd.NhVa(1, 1, 0x1000), Cmd.AtcInv(0x10, 0x1000, 0)]));
        Assert.Equal(1, side.Driver.AtcSyncRetries);
        Assert.False(side.Fast.Engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 1, 0x1000, out _));
        Assert.True(side.Fast.Engine.DeviceTlb.TryLookup(0x10, AddressSpace.None, 0x1000, out _));
    }

    [Fact]
    public void IllegalCommandInABatch_IsReplacedByASyncAndTheRestOfTheBatchRuns()
    {
        using var side = new Side(true, new SmmuOptions(), FaultPlan.None, 5, msiPolling: true);
        side.Fast!.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, 0x1000, 0x1000));
        side.Fast.Engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, 1, 1, 0x2000, 0x2000));
        Assert.Equal(0, side.Driver.IssueCmdList([Cmd.NhVa(1, 1, 0x1000), new SmmuCommand(0x00, 0), Cmd.NhVa(1, 1, 0x2000)]));
        Assert.Equal(1, side.Driver.IllegalSkipped);
        Assert.Equal(LinuxCmdqModel.SkipSync, SmmuCommand.Read(side.Queue.AsSpan(16, 16)));
        Assert.Equal(0, side.Fast.Engine.Iotlb.Count);
    }
}
