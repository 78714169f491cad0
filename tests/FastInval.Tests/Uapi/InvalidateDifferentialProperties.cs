using System.Buffers.Binary;

using FastInval.Reference;
using FastInval.Reference.Scenarios;
using FastInval.Reference.Uapi;
using FastInval.Uapi;

using FsCheck;
using FsCheck.Fluent;
using FsCheck.Xunit;

namespace FastInval.Tests.Uapi;

/// <summary>
/// <see cref="Iommufd"/> against <see cref="ReferenceIommufd"/> (its own copy rules and decoders over
/// <see cref="ReferenceEngine"/>s) on random, mostly well-formed IOMMU_HWPT_INVALIDATE calls of every data type, with
/// random cache fills and fault plans in both reporting modes: the errno, the header written back (entry_num), the
/// array afterwards (hw_error), every cache and every mock slot must be equal after every call.
/// </summary>
[Collection(HeavyPropertyCollection.Name)]
public class InvalidateDifferentialProperties
{
#if FSCHECK_SOAK
    private const int Cases = 200_000;
#else
    private const int Cases = 10_000;
#endif

    [Property(MaxTest = Cases)]
    public Property HwptInvalidate_RandomArraysEveryDataType_SameAsReference() =>
        Prop.ForAll(InvalidateGenerators.Cases(), c =>
        {
            string? why;
            try
            {
                why = IommufdDifferential.Run(c);
            }
            catch (Exception ex)
            {
                why = "exception: " + ex;
            }

            return (why is null).Label(why ?? "agree");
        });
}
