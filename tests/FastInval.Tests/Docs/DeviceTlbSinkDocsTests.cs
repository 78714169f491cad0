using FastInval.Vtd;

namespace FastInval.Tests.Docs;

// <docs:device-tlb-sink-class>
/// <summary>The VMM's sink: it hands each request to the device and keeps what it needs to answer.</summary>
public sealed class ForwardingSink : IDeviceTlbSink
{
    public readonly System.Collections.Concurrent.ConcurrentQueue<(ulong Ticket, IDeviceTlbCompletion Completion)> Sent = new();

    public void Submit(in DeviceTlbRequest request, IDeviceTlbCompletion completion)
    {
        // Forward request.Descriptor to device request.Descriptor.SourceId (range First..Last, PASID) here.
        // Never wait for the answer in Submit.
        Sent.Enqueue((request.Ticket, completion));
    }
}
// </docs:device-tlb-sink-class>

/// <summary>Keeps docs/device-tlb-sink.md true: its example is this file's code, and it runs here.</summary>
public class DeviceTlbSinkDocsTests
{
    [Fact]
    public void SinkExample_RunsAndTheDocShowsItVerbatim()
    {
        // <docs:device-tlb-sink-example>
        var memory = new GuestMemory();
        var ram = new byte[1 << 20];
        memory.Map(0x0, ram);
        var sink = new ForwardingSink();
        using var unit = new VtdIommu(memory, new VtdOptions
        {
            DeviceTlbSink = new DeviceTlbSinkOptions
            {
                Sink = sink,
                Timeout = TimeSpan.FromSeconds(1),  // silence becomes an ITE after this
                MaxOutstanding = 256,               // requests in flight
            },
        });

        // The guest: a 128-bit queue at 0x1_0000, a device-TLB invalidation for device 0x0100, a wait that writes 1.
        unit.WriteRegister(VtdRegisters.Iqa, 0x1_0000, 8);
        unit.WriteRegister(VtdRegisters.Gcmd, VtdRegisters.Qie, 4);
        VtdDescriptor.DeviceTlb(sourceId: 0x0100, address: 0x4000).Write(ram.AsSpan(0x1_0000, 16));
        VtdDescriptor.Wait(statusWrite: true, interrupt: false, statusAddress: 0x2_0000, statusData: 1).Write(ram.AsSpan(0x1_0010, 16));
        unit.WriteRegister(VtdRegisters.Iqt, 0x20, 4);
        uint beforeAnswer = BitConverter.ToUInt32(ram, 0x2_0000);           // 0: the wait is held, IQH on it

        // The device answers later, on its own thread.
        sink.Sent.TryDequeue(out var sent);
        var device = new Thread(() => sent.Completion.Complete(sent.Ticket, DeviceTlbFault.None));
        device.Start();
        device.Join();
        uint afterAnswer = BitConverter.ToUInt32(ram, 0x2_0000);            // 1: the wait completed
        // </docs:device-tlb-sink-example>

        Assert.Equal(0u, beforeAnswer);
        Assert.Equal(1u, afterAnswer);
        Assert.Equal(0x20UL, unit.ReadRegister(VtdRegisters.Iqh, 8));
        Assert.Equal(0, unit.OutstandingDeviceTlbRequests);

        string source = File.ReadAllText(ReadmeTests.RepoFile("tests", "FastInval.Tests", "Docs", "DeviceTlbSinkDocsTests.cs"));
        string doc = File.ReadAllText(ReadmeTests.RepoFile("docs", "device-tlb-sink.md"));
        foreach (string region in new[] { "docs:device-tlb-sink-class", "docs:device-tlb-sink-example" })
        {
            string snippet = ReadmeTests.ExtractRegion(source, region);
            Assert.True(snippet == ReadmeTests.ExtractRegion(doc, region),
                "docs/device-tlb-sink.md must show exactly the code between the <" + region + "> markers of DeviceTlbSinkDocsTests.cs:\n\n" + snippet);
        }
    }
}
