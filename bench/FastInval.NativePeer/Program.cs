// The in-process rows of native/bench.sh compiled ahead of time: the same loops as FastInval.Benchmarks --native-peer.
return FastInval.Benchmarks.Infrastructure.NativePeer.Run();
