using System.Collections.Immutable;
using FastInval.Reference;
using FastInval.Reference.Vtd;
using FastInval.Vtd;
using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace FastInval.Tests.Vtd;

/// <summary>
/// The Linux driver's submission and recovery procedure (<see cref="LinuxQiModel"/>) against <see cref="VtdIommu"/> and,
/// in lockstep, against <see cref="ReferenceVtd"/>, under random fault plans: every submission returns what Linux
/// expects (0; -EINVAL when a descriptor fetch of the submission failed; -ETIMEDOUT when it invalidated the device TLB of
/// a device that is gone), the invalidations of a successful submission are done, and both units end every submission
/// with the same answer, registers and caches.
/// </summary>
public class LinuxDriverTests
{
    private const ulong Ring = 0x10_0000, StatusArray = 0x20_0000;
    private const ushort DeadSid = 0x30;

    /// <summary>What a flush helper invalidates, and the entry ("canary") it must remove.</summary>
    public enum FlushKind { Iotlb, Piotlb, DevIotlb, DevIotlbPasid, Context, PasidCache, Iec }

    public sealed record Flush(FlushKind Kind, ushort Did, uint Pasid, ushort Sid, ulong Start, ulong Pages, bool Ih)
    {
        public override string ToString() => $"{Kind}(did {Did}, pasid {Pasid}, sid 0x{Sid:X}, 0x{Start:X} +{Pages} pages{(Ih ? ", ih" : "")})";
    }

    /// <summary>Fault kinds are not mixed: an IQE inside an ITE window makes Linux spin until DMAR_OPERATION_TIMEOUT.</summary>
    public sealed record LinuxScenario(bool Scalable, bool FetchFaults, uint TimeoutPpm, uint IcePpm, ulong Seed,
        ImmutableArray<ulong> FetchErrorOrdinals, ImmutableArray<ulong> TimeoutOrdinals, bool DeadDevice,
        ImmutableArray<ImmutableArray<Flush>> Submissions)
    {
        public FaultPlan Plan() => new()
        {
            Seed = Seed,
            TimeoutPerMillion = TimeoutPpm,
            CompletionErrorPerMillion = IcePpm,
            FetchErrorOrdinals = FetchErrorOrdinals,
            TimeoutSourceIds = DeadDevice ? [DeadSid] : [],
            TimeoutOrdinals = TimeoutOrdinals,
        };

        public override string ToString() =>
            $"{(Scalable ? "scalable" : "legacy")}, plan [{Plan()} fetchAt={string.Join(",", FetchErrorOrdinals)}]\n  " +
            string.Join("\n  ", Submissions.Select(s => string.Join(" + ", s)));
    }

    private static VtdDescriptor Encode(Flush f, bool dit) => f.Kind switch
    {
        FlushKind.Iotlb => LinuxQiModel.Iotlb(f.Did, f.Start, f.Start + (f.Pages << 12) - 1, f.Ih, mamv: 18),
        FlushKind.Piotlb => LinuxQiModel.Piotlb(f.Did, f.Pasid, f.Start, f.Start + (f.Pages << 12) - 1, f.Ih),
        FlushKind.DevIotlb => LinuxQiModel.DevIotlb(f.Sid, dit ? f.Sid : (ushort)0, f.Start, f.Start + (f.Pages << 12) - 1),
        FlushKind.DevIotlbPasid => LinuxQiModel.DevIotlbPasid(f.Sid, dit ? f.Sid : (ushort)0, f.Pasid, f.Start, f.Start + (f.Pages << 12) - 1),
        FlushKind.Context => Dsc.Cc(3, f.Did, f.Sid),
        FlushKind.PasidCache => Dsc.Pc(1, f.Did, f.Pasid),
        _ => Dsc.Iec(),
    };

    /// <summary>Fills the flush's canary into both engines.</summary>
    private static void FillCanary(Flush f, InvalidationEngine fast, ReferenceEngine reference)
    {
        switch (f.Kind)
        {
            case FlushKind.Iotlb:
            {
                var e = TranslationEntry.Leaf(TranslationStage.Stage2, f.Did, AddressSpace.None, f.Start, 0x1000);
                fast.Iotlb.Fill(e);
                reference.FillIotlb(e);
                break;
            }

            case FlushKind.Piotlb:
            {
                var e = TranslationEntry.Leaf(TranslationStage.Stage1, f.Did, f.Pasid, f.Start, 0x2000);
                fast.Iotlb.Fill(e);
                reference.FillIotlb(e);
                break;
            }

            case FlushKind.DevIotlb or FlushKind.DevIotlbPasid:
            {
                var e = new DeviceTlbEntry(f.Sid, f.Kind == FlushKind.DevIotlb ? AddressSpace.None : f.Pasid, f.Start, 0x3000);
                fast.DeviceTlb.Fill(e);
                reference.FillDeviceTlb(e);
                break;
            }

            default:
            {
                var e = f.Kind switch
                {
                    FlushKind.Context => new ConfigEntry(ConfigKinds.Context, f.Sid, AddressSpace.None, f.Did, 1),
                    FlushKind.PasidCache => new ConfigEntry(ConfigKinds.PasidEntry, f.Sid, f.Pasid, f.Did, 2),
                    _ => new ConfigEntry(ConfigKinds.InterruptEntry, f.Sid, AddressSpace.None, 0, 3),
                };
                fast.ConfigCache.Fill(e);
                reference.FillConfig(e);
                break;
            }
        }
    }

    private static bool CanaryCached(Flush f, InvalidationEngine fast) => f.Kind switch
    {
        FlushKind.Iotlb => fast.Iotlb.TryLookup(TranslationStage.Stage2, f.Did, AddressSpace.None, f.Start, out _),
        FlushKind.Piotlb => fast.Iotlb.TryLookup(TranslationStage.Stage1, f.Did, f.Pasid, f.Start, out _),
        FlushKind.DevIotlb => fast.DeviceTlb.TryLookup(f.Sid, AddressSpace.None, f.Start, out _),
        FlushKind.DevIotlbPasid => fast.DeviceTlb.TryLookup(f.Sid, f.Pasid, f.Start, out _),
        FlushKind.Context => fast.ConfigCache.TryLookup(ConfigKinds.Context, f.Sid, AddressSpace.None, out _),
        FlushKind.PasidCache => fast.ConfigCache.TryLookup(ConfigKinds.PasidEntry, f.Sid, f.Pasid, out _),
        _ => fast.ConfigCache.TryLookup(ConfigKinds.InterruptEntry, f.Sid, AddressSpace.None, out _),
    };

    /// <summary>Runs the scenario; null when every submission behaved as Linux expects on both units.</summary>
    public static string? Run(LinuxScenario s) => Run(s, out _);

    /// <summary>Runs the scenario and hands back the driver model that drove <see cref="VtdIommu"/>.</summary>
    internal static string? Run(LinuxScenario s, out LinuxQiModel driver)
    {
        FaultPlan plan = s.Plan();
        var options = new VtdOptions
        {
            ScalableMode = s.Scalable,
            FaultPlan = plan,
            Engine = new EngineOptions { IotlbCapacity = 512, DeviceTlbCapacity = 256, ConfigCacheCapacity = 256 },
        };
        bool Present(uint sid) => !(s.DeadDevice && sid == DeadSid);

        byte[] fastRing = new byte[8192], fastStatus = new byte[4096], refRing = new byte[8192], refStatus = new byte[4096];
        var fastMemory = new GuestMemory();
        fastMemory.Map(Ring, fastRing);
        fastMemory.Map(StatusArray, fastStatus);
        var refMemory = new ReferenceGuestMemory();
        refMemory.Map(Ring, refRing);
        refMemory.Map(StatusArray, refStatus);
        using var fast = new VtdIommu(fastMemory, options);
        var reference = new ReferenceVtd(refMemory, options, new ReferenceEngine(plan));
        var fastLinux = new LinuxQiModel(fast.ReadRegister, fast.WriteRegister, fastRing, Ring, fastStatus, StatusArray, Present);
        var refLinux = new LinuxQiModel(reference.Read, reference.Write, refRing, Ring, refStatus, StatusArray, Present);
        fastLinux.Enable();
        refLinux.Enable();
        driver = fastLinux;

        for (int n = 0; n < s.Submissions.Length; n++)
        {
            ImmutableArray<Flush> flushes = s.Submissions[n];
            foreach (Flush f in flushes)
            {
                FillCanary(f, fast.Engine, reference.Engine);
            }

            VtdDescriptor[] descriptors = [.. flushes.Select(f => Encode(f, dit: true))];
            ulong fetchesBefore = fast.DescriptorFetches;
            int rc = fastLinux.SubmitSync(descriptors);
            int refRc = refLinux.SubmitSync(descriptors);
            string where = $"submission #{n} [{string.Join(" + ", flushes)}]";
            if (rc != refRc)
            {
                return $"{where}: fast rc {rc}, reference rc {refRc}";
            }

            bool fetchFailed = s.FetchErrorOrdinals.Any(o => o >= fetchesBefore && o < fast.DescriptorFetches);
            bool deadDevice = s.DeadDevice && flushes.Any(f => f.Kind is FlushKind.DevIotlb or FlushKind.DevIotlbPasid && f.Sid == DeadSid);
            int expected = fetchFailed ? LinuxQiModel.EInval : deadDevice ? LinuxQiModel.ETimedOut : 0;
            if (rc != expected)
            {
                return $"{where}: rc {rc}, Linux expects {expected} (fetch failed {fetchFailed}, dead device {deadDevice})";
            }

            if (rc == 0 && flushes.FirstOrDefault(f => CanaryCached(f, fast.Engine)) is Flush stale)
            {
                return $"{where}: rc 0 but {stale} left its entry cached";
            }

            if (rc == LinuxQiModel.ETimedOut && !flushes.Any(f => f.Sid == DeadSid && f.Kind is FlushKind.DevIotlb or FlushKind.DevIotlbPasid && CanaryCached(f, fast.Engine)))
            {
                return $"{where}: -ETIMEDOUT but the dead device's entry is gone";
            }

            string? why = Same(fast, reference);
            if (why is not null)
            {
                return $"{where}: {why}";
            }
        }

        return null;
    }

    private static string? Same(VtdIommu fast, ReferenceVtd reference)
    {
        for (uint offset = 0; offset < 0x100; offset += 4)
        {
            if (fast.ReadRegister(offset, 4) != reference.Read(offset, 4))
            {
                return $"register 0x{offset:X}: fast 0x{fast.ReadRegister(offset, 4):X}, reference 0x{reference.Read(offset, 4):X}";
            }
        }

        bool same = EntryOrder.Sorted(fast.Engine.Iotlb.ToArray()).AsSpan().SequenceEqual(reference.Engine.IotlbSnapshot()) &&
                    EntryOrder.Sorted(fast.Engine.DeviceTlb.ToArray()).AsSpan().SequenceEqual(reference.Engine.DeviceTlbSnapshot()) &&
                    EntryOrder.Sorted(fast.Engine.ConfigCache.ToArray()).AsSpan().SequenceEqual(reference.Engine.ConfigSnapshot());
        return same ? null : "caches differ from the reference's";
    }

    // ---- generators -------------------------------------------------------------------------------------

    private static Gen<Flush> FlushGen(bool scalable) =>
        from kind in scalable
            ? Gen.Frequency((4, Gen.Constant(FlushKind.Iotlb)), (6, Gen.Constant(FlushKind.Piotlb)), (4, Gen.Constant(FlushKind.DevIotlb)),
                (4, Gen.Constant(FlushKind.DevIotlbPasid)), (1, Gen.Constant(FlushKind.Context)), (2, Gen.Constant(FlushKind.PasidCache)),
                (1, Gen.Constant(FlushKind.Iec)))
            : Gen.Frequency((6, Gen.Constant(FlushKind.Iotlb)), (4, Gen.Constant(FlushKind.DevIotlb)), (1, Gen.Constant(FlushKind.Context)),
                (1, Gen.Constant(FlushKind.Iec)))
        from did in Gen.Choose(1, 3)
        from pasid in Gen.Choose(1, 4)
        from sid in Gen.Frequency((4, Gen.Choose(0x10, 0x13)), (1, Gen.Constant((int)DeadSid)))
        from page in Gen.Choose(0, 0x3FFFF)
        from pages in Gen.Frequency((5, Gen.Constant(1)), (3, Gen.Choose(2, 64)), (1, Gen.Choose(65, 1 << 20)))
        from ih in Gen.Choose(0, 3)
        select new Flush(kind, (ushort)did, (uint)pasid, (ushort)sid, (ulong)page << 12, (ulong)pages, ih == 0);

    private static Arbitrary<LinuxScenario> Scenarios() => Arb.From(
        from scalable in Gen.Frequency((3, Gen.Constant(true)), (1, Gen.Constant(false)))
        from kind in Gen.Choose(0, 2) // 0: no faults, 1: fetch errors, 2: time-outs and completion errors
        from timeout in kind == 2 ? Gen.Elements(0u, 100_000u, 300_000u) : Gen.Constant(0u)
        from ice in kind == 2 ? Gen.Elements(0u, 200_000u) : Gen.Constant(0u)
        from dead in kind == 2 ? Gen.Elements(false, true) : Gen.Constant(false)
        from seed in Gen.Choose(0, int.MaxValue)
        from gaps in Gen.Choose(12, 40).ArrayOf(kind == 1 ? 8 : 0)
        from timeoutAt in Gen.Choose(0, 20).Select(x => (ulong)x).ArrayOf(kind == 2 ? 2 : 0)
        from count in Gen.Choose(10, 50)
        from submissions in (from size in Gen.Frequency((4, Gen.Constant(1)), (1, Gen.Choose(2, 4)))
                             from flushes in FlushGen(scalable).ArrayOf(size)
                             select ImmutableArray.Create(flushes)).ArrayOf(count)
        select new LinuxScenario(scalable, kind == 1, timeout, ice, (ulong)seed * 0x9E37_79B9_7F4A_7C15UL,
            [.. gaps.Select((g, i) => 3 + (ulong)gaps.Take(i + 1).Sum())], [.. timeoutAt], dead, [.. submissions]),
        s => Enumerable.Range(0, s.Submissions.Length).Reverse().Select(i => s with { Submissions = s.Submissions.RemoveAt(i) }));

    [Property(MaxTest = 300)]
    public Property LinuxSubmitSync_RandomFaultPlans_AnswersAsLinuxExpects_AndCachesMatchTheReference() =>
        Prop.ForAll(Scenarios(), s =>
        {
            string? why;
            try
            {
                why = Run(s);
            }
            catch (Exception ex)
            {
                why = "exception: " + ex.Message;
            }

            return (why is null).Label(why ?? "ok")
                .Classify(s.FetchFaults, "fetch faults")
                .Classify(s.TimeoutPpm > 0 || s.DeadDevice, "time-outs");
        });

    // ---- hand-picked cases ------------------------------------------------------------------------------

    private static LinuxScenario One(FaultPlan plan, params Flush[][] submissions) => new(
        Scalable: true, FetchFaults: !plan.FetchErrorOrdinals.IsDefaultOrEmpty, TimeoutPpm: 0, IcePpm: 0, Seed: 1,
        FetchErrorOrdinals: plan.FetchErrorOrdinals, TimeoutOrdinals: plan.TimeoutOrdinals,
        DeadDevice: !plan.TimeoutSourceIds.IsDefaultOrEmpty, Submissions: [.. submissions.Select(f => ImmutableArray.Create(f))]);

    private static readonly Flush Page = new(FlushKind.Piotlb, 1, 2, 0x10, 0x5000, 1, false);

    [Fact]
    public void LinuxSubmitSync_FetchErrorOnTheFirstDescriptor_CopiesTheWaitOverIt_ReturnsEinval()
    {
        Assert.Null(Run(One(new FaultPlan { FetchErrorOrdinals = [0] }, [Page], [Page]), out LinuxQiModel driver));
        Assert.Equal((1, 0), (driver.FirstSlotRecoveries, driver.RangeRecoveries));
    }

    [Fact]
    public void LinuxSubmitSync_FetchErrorOnTheWait_FencesTheRange_ReturnsEinval()
    {
        // Ordinal 0 is the descriptor, 1 the wait: the IQE is on the wait slot, not the first of the submission.
        Assert.Null(Run(One(new FaultPlan { FetchErrorOrdinals = [1] }, [Page], [Page]), out LinuxQiModel driver));
        Assert.Equal((0, 1), (driver.FirstSlotRecoveries, driver.RangeRecoveries));
    }

    [Fact]
    public void LinuxSubmitSync_DeadDevice_ReturnsEtimedout_AndTheNextSubmissionWorks()
    {
        var dead = new Flush(FlushKind.DevIotlb, 1, 0, DeadSid, 0x5000, 4, false);
        var live = new Flush(FlushKind.DevIotlbPasid, 1, 3, 0x11, 0x9000, 2, false);
        Assert.Null(Run(One(new FaultPlan { TimeoutSourceIds = [DeadSid] }, [dead], [live], [live, dead], [live]), out LinuxQiModel driver));
        Assert.Equal((2, 0), (driver.TimeoutsCleared, driver.Resubmissions));
    }

    [Fact]
    public void LinuxSubmitSync_DeviceTimeoutOnALiveDevice_IsResubmittedAndSucceeds()
    {
        var live = new Flush(FlushKind.DevIotlb, 1, 0, 0x12, 0x5000, 1, false);
        Assert.Null(Run(One(new FaultPlan { TimeoutOrdinals = [0, 2] }, [live], [Page, live]), out LinuxQiModel driver));
        Assert.Equal((2, 2), (driver.TimeoutsCleared, driver.Resubmissions));
    }

    [Fact]
    public void LinuxPsiAligned_MatchesTheWorkedExamples()
    {
        Assert.Equal((0x1000UL, 0), LinuxQiModel.PsiAligned(0x1000, 0x1FFF));
        Assert.Equal((0x4000UL, 2), LinuxQiModel.PsiAligned(0x4000, 0x7FFF));
        Assert.Equal((0x4000UL, 2), LinuxQiModel.PsiAligned(0x5000, 0x6FFF));
        Assert.Equal((0x0UL, 3), LinuxQiModel.PsiAligned(0x3000, 0x5FFF));
        Assert.Equal((0x0UL, 4), LinuxQiModel.PsiAligned(0x7000, 0x8FFF));
    }
}
