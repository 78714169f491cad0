using FastInval.Reference.Scenarios;
using FastInval.Tests.Properties;

using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace FastInval.Tests.Notifiers;

/// <summary>Notifier records against the reference engine on random scenarios (fills, batches, fault plans) with a
/// random filter drawn from the same small palettes as the entries, so that filters hit and miss all the time.</summary>
public class NotifierProperties
{
#if FSCHECK_SOAK
    private const int Cases = 100_000;
#else
    private const int Cases = 5_000;
#endif

    /// <summary>Random filters: any mix of scopes, domain, address space, source id and range.</summary>
    public static Gen<NotifierFilter> Filter =>
        from scopes in Gen.Choose(0, 7)
        from hasDomain in Gen.Elements(false, true)
        from domain in Gen.Elements(Generators.Domains)
        from hasAs in Gen.Elements(false, true)
        from asId in Gen.Elements(Generators.AddressSpaces)
        from hasSource in Gen.Elements(false, true)
        from source in Gen.Elements(Generators.SourceIds)
        from hasRange in Gen.Elements(false, true)
        from a in Gen.Elements(Generators.Addresses)
        from b in Gen.Elements(Generators.Addresses)
        from tail in Gen.Elements(0UL, 0xFFFUL, 0x1F_FFFFUL)
        select new NotifierFilter
        {
            Scopes = (NotifierScopes)scopes,
            DomainId = hasDomain ? domain : null,
            AddressSpaceId = hasAs ? asId : null,
            SourceId = hasSource ? source : null,
            Range = hasRange ? (Math.Min(a, b), Math.Max(a, b) > ulong.MaxValue - tail ? ulong.MaxValue : Math.Max(a, b) + tail) : null,
        };

    /// <summary>Every batch's records are exactly the descriptors the reference applied (with positions and statuses), in
    /// one callback; every entry the reference removed is removed by some record (by the reference's matching rules);
    /// a filtered subscriber gets a subsequence that still covers every removed entry its filter selects.</summary>
    [Property(MaxTest = Cases)]
    public Property Notifiers_RandomScenariosAndFilters_RecordsMatchTheReferenceAndCoverEveryRemoval() =>
        Prop.ForAll(Generators.Roomy(faults: true), Arb.From(Filter), (s, f) =>
        {
            string? why;
            try
            {
                why = NotifierDifferential.Run(s, f);
            }
            catch (Exception ex)
            {
                why = "exception: " + ex;
            }

            return (why is null).Label(why ?? "agree").Classify(!f.IsAll, "filtered");
        });
}
