#!/usr/bin/env bash
# Packs the library and checks the package as a consumer would see it: the .nupkg holds the assembly, its XML docs,
# the README, LICENSE, CHANGELOG and the public API files, declares the MIT licence expression; the .snupkg holds
# the PDB; and a fresh console project that references the package from a local folder builds and runs against it.
# Prints "pack: ok" or "pack: FAIL <reason>" (counted by .ci/run).
set -uo pipefail
cd "$(dirname "$0")/.."
out=artifacts/packages
rm -rf "$out" artifacts/pack-consumer
fail() { echo "pack: FAIL $*"; exit 1; }
dotnet pack src/FastInval -c Release -o "$out" -nologo -v q >artifacts/ci/pack.log 2>&1 || { tail -20 artifacts/ci/pack.log; fail "dotnet pack failed"; }
nupkg=$(ls "$out"/FastInval.*.nupkg 2>/dev/null | grep -v '\.snupkg$' | head -1)
snupkg=$(ls "$out"/FastInval.*.snupkg 2>/dev/null | head -1)
[ -n "$nupkg" ] || fail "no .nupkg"
[ -n "$snupkg" ] || fail "no .snupkg"
version=$(basename "$nupkg" .nupkg); version=${version#FastInval.}
list=$(python3 -c 'import sys,zipfile; print("\n".join(zipfile.ZipFile(sys.argv[1]).namelist()))' "$nupkg")
for f in README.md LICENSE CHANGELOG.md lib/net10.0/FastInval.dll lib/net10.0/FastInval.xml PublicAPI.Shipped.txt PublicAPI.Unshipped.txt; do
  grep -qx "$f" <<<"$list" || fail "$f missing from $nupkg"
done
python3 -c 'import sys,zipfile; sys.exit(0 if "lib/net10.0/FastInval.pdb" in zipfile.ZipFile(sys.argv[1]).namelist() else 1)' "$snupkg" || fail "PDB missing from $snupkg"
nuspec=$(python3 -c 'import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); print(z.read("FastInval.nuspec").decode())' "$nupkg")
grep -q '<license type="expression">MIT</license>' <<<"$nuspec" || fail "licence expression is not MIT"
grep -q '<readme>README.md</readme>' <<<"$nuspec" || fail "readme not declared"
# A consumer: package from the local folder only, the README's minimal example.
mkdir -p artifacts/pack-consumer && cd artifacts/pack-consumer
cat > nuget.config <<XML
<?xml version="1.0" encoding="utf-8"?>
<configuration><packageSources><clear /><add key="local" value="../packages" /></packageSources></configuration>
XML
cat > Consumer.csproj <<XML
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><OutputType>Exe</OutputType><TargetFramework>net10.0</TargetFramework><Nullable>enable</Nullable>
    <ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally><ImportDirectoryBuildProps>false</ImportDirectoryBuildProps></PropertyGroup>
  <ItemGroup><PackageReference Include="FastInval" Version="$version" /></ItemGroup>
</Project>
XML
cat > Program.cs <<'CS'
using FastInval;
using var engine = new InvalidationEngine();
engine.Iotlb.Fill(TranslationEntry.Leaf(TranslationStage.Stage1, domainId: 1, addressSpaceId: 5,
    inputAddress: 0x8000_0000, outputAddress: 0x1_2345_6000));
bool hit = engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 5, 0x8000_0123, out Translation t);
InvalidationStatus status = engine.Execute(InvalidationDescriptor.IotlbRange(domainId: 1, addressSpaceId: 5,
    first: 0x8000_0000, last: 0x8000_0fff));
bool hitAfter = engine.Iotlb.TryLookup(TranslationStage.Stage1, 1, 5, 0x8000_0123, out _);
bool ok = hit && t.OutputAddress == 0x1_2345_6123 && status == InvalidationStatus.Ok && !hitAfter;
Console.WriteLine(ok ? "consumer: ok" : "consumer: wrong results");
return ok ? 0 : 1;
CS
# A throw-away packages folder, so the local package (same version) never lands in the machine's global cache.
NUGET_PACKAGES=$PWD/.nuget dotnet run -c Release >run.log 2>&1 || { tail -20 run.log; cd ../..; fail "consumer did not build or run"; }
grep -q "consumer: ok" run.log || { cat run.log; cd ../..; fail "consumer printed wrong results"; }
cd ../..
echo "pack: ok ($(basename "$nupkg"), $(basename "$snupkg"))"
