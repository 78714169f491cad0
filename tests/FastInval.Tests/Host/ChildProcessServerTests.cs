using System.Diagnostics;
using System.Runtime.InteropServices;
using FastInval.Tests.Cli;

namespace FastInval.Tests.Host;

/// <summary><c>dotnet FastInval.Cli.dll serve</c> as a child process: serves, refuses a second server on its path, and on
/// SIGTERM drains, removes its socket file and exits 0.</summary>
public partial class ChildProcessServerTests
{
    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);

    private const int SigTerm = 15;

    private static Process StartServe(string socket, out List<string> stdout)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in new[] { CliLocator.CliDll(), "serve", "--socket", socket, "--max-units", "4" })
        {
            psi.ArgumentList.Add(a);
        }

        var lines = new List<string>();
        var process = Process.Start(psi)!;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) { lock (lines) { lines.Add(e.Data); } } };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) { lock (lines) { lines.Add("stderr: " + e.Data); } } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        stdout = lines;
        return process;
    }

    [Fact]
    public void ServeAsAChildProcess_ServesRefusesASecondServerAndStopsCleanlyOnSigterm()
    {
        Assert.True(File.Exists(CliLocator.CliDll()), CliLocator.CliDll());
        DirectoryInfo dir = Directory.CreateTempSubdirectory("fastinval-serve-");
        string socket = Path.Combine(dir.FullName, "s.sock");
        using Process server = StartServe(socket, out List<string> output);
        try
        {
            TestServer.Eventually(() => { lock (output) { return output.Any(l => l.Contains("listening on", StringComparison.Ordinal)); } }, "the server to listen", 30_000);
            using (var c = new WireClient(socket))
            {
                using var twin = new TwinSession(c, seed: 77);
                for (int i = 0; i < 300; i++)
                {
                    twin.Step();
                }

                Assert.Equal(4u, System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(c.HelloReply.Payload.AsSpan(8)));
            }

            using (Process second = StartServe(socket, out List<string> secondOutput))
            {
                Assert.True(second.WaitForExit(30_000));
                second.WaitForExit();
                Assert.Equal(1, second.ExitCode);
                lock (secondOutput)
                {
                    Assert.Contains(secondOutput, l => l.Contains("already listening", StringComparison.Ordinal));
                }
            }

            using (var c = new WireClient(socket))
            {
                Assert.NotEqual(0u, c.CreateEngine()); // the first server still serves
            }

            Assert.Equal(0, Kill(server.Id, SigTerm));
            Assert.True(server.WaitForExit(30_000), "server did not stop on SIGTERM");
            server.WaitForExit();
            Assert.Equal(0, server.ExitCode);
            Assert.False(File.Exists(socket), "socket file left behind");
            lock (output)
            {
                Assert.Contains(output, l => l.Contains("stopped", StringComparison.Ordinal));
            }
        }
        finally
        {
            if (!server.HasExited)
            {
                server.Kill();
            }

            dir.Delete(recursive: true);
        }
    }
}
