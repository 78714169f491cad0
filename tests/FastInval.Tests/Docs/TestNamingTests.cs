using System.Reflection;
using System.Text.RegularExpressions;

namespace FastInval.Tests.Docs;

/// <summary>One test-naming style: <c>Subject_Behaviour[_Condition]</c>, each segment PascalCase (digits may open a
/// segment, as in <c>Bits11_9</c>).</summary>
public partial class TestNamingTests
{
    [GeneratedRegex(@"^[A-Z][A-Za-z0-9]*(_[A-Z0-9][A-Za-z0-9]*)+$")]
    private static partial Regex Style();

    [Fact]
    public void EveryTest_IsNamedInTheOneStyle()
    {
        var attributes = new[] { typeof(FactAttribute), typeof(FsCheck.Xunit.PropertyAttribute) };
        string[] names = typeof(TestNamingTests).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly))
            .Where(m => m.GetCustomAttributes().Any(a => attributes.Any(k => k.IsInstanceOfType(a))))
            .Select(m => m.DeclaringType!.Name + "." + m.Name)
            .ToArray();
        Assert.True(names.Length > 500, $"found {names.Length} tests");
        string[] off = names.Where(n => !Style().IsMatch(n[(n.IndexOf('.') + 1)..])).ToArray();
        Assert.True(off.Length == 0, "tests named in another style:\n" + string.Join("\n", off));
    }
}
