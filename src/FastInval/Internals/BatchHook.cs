namespace FastInval.Internals;

/// <summary>Test-only: sees (and may rewrite) a front end's decoded batch just before the engine executes it. Set only
/// through the units' internal <c>TestBatchHook</c> properties (InternalsVisibleTo), never by production code; it lets a
/// test provoke an engine status the decoders never cause (<see cref="InvalidationStatus.Invalid"/>).</summary>
internal delegate void BatchHook(Span<InvalidationDescriptor> batch);
