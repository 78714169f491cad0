namespace FastInval.Reference;

/// <summary>
/// The naive oracle of <see cref="InvalidationEngine"/>: three plain lists of entries, unbounded, and the documented
/// fill, lookup and invalidation rules applied by linear search. It shares no decode or match code with the fast
/// engine; only the public vocabulary (entry and descriptor structs, enums, <see cref="FastInval.FaultPlan"/>).
/// </summary>
public sealed class ReferenceEngine
{
    private readonly List<TranslationEntry> _iotlb = [];
    private readonly List<DeviceTlbEntry> _deviceTlb = [];
    private readonly List<ConfigEntry> _config = [];
    private ulong _deviceTlbOrdinal;

    /// <summary>Creates an empty reference engine.</summary>
    public ReferenceEngine(FaultPlan? faultPlan = null) => FaultPlan = faultPlan ?? FaultPlan.None;

    /// <summary>The fault plan consulted for device-TLB invalidations (may be replaced between batches).</summary>
    public FaultPlan FaultPlan { get; set; }

    /// <summary>Valid device-TLB descriptors executed so far: the ordinal the fault plan sees next.</summary>
    public ulong DeviceTlbInvalidations => _deviceTlbOrdinal;

    /// <summary>IOTLB entries cached now.</summary>
    public int IotlbCount => _iotlb.Count;

    /// <summary>Device-TLB entries cached now.</summary>
    public int DeviceTlbCount => _deviceTlb.Count;

    /// <summary>Configuration entries cached now.</summary>
    public int ConfigCount => _config.Count;

    // ---- IOTLB ----------------------------------------------------------------------------------------

    /// <summary>Caches an IOTLB entry: Rejected if malformed, Replaced if its identity exists, else Inserted.</summary>
    public FillResult FillIotlb(in TranslationEntry entry)
    {
        if (!EntryRules.IsValid(entry))
        {
            return FillResult.Rejected;
        }

        TranslationEntry stored = EntryRules.Normalize(entry);
        for (int i = 0; i < _iotlb.Count; i++)
        {
            if (EntryRules.SameIdentity(_iotlb[i], stored))
            {
                _iotlb[i] = stored;
                return FillResult.Replaced;
            }
        }

        _iotlb.Add(stored);
        return FillResult.Inserted;
    }

    /// <summary>
    /// The leaf translation of <paramref name="address"/> for (stage, domain, address space): among the leaves of that
    /// stage and domain whose span contains the address and that are global or of that address space, the smallest
    /// span wins, and at equal span the non-global one.
    /// </summary>
    public bool TryLookupIotlb(TranslationStage stage, ushort domainId, uint addressSpaceId, ulong address, out Translation translation) =>
        TryLookupIotlbCore(stage, domainId, addressSpaceId, address, table: false, spanLog2: -1, out translation);

    /// <summary>The table entry of exactly 2^<paramref name="spanLog2"/> bytes around <paramref name="address"/>
    /// (non-global before global); the answer's output is the next-level table address.</summary>
    public bool TryLookupIotlbTable(TranslationStage stage, ushort domainId, uint addressSpaceId, ulong address, int spanLog2,
        out Translation translation) =>
        TryLookupIotlbCore(stage, domainId, addressSpaceId, address, table: true, spanLog2, out translation);

    private bool TryLookupIotlbCore(TranslationStage stage, ushort domainId, uint addressSpaceId, ulong address, bool table,
        int spanLog2, out Translation translation)
    {
        translation = default;
        if (!EntryRules.IsValidAddressSpace(addressSpaceId))
        {
            return false;
        }

        bool found = false;
        TranslationEntry best = default;
        foreach (TranslationEntry e in _iotlb)
        {
            if (e.IsTable != table)
            {
                continue;
            }

            if (table && e.SizeLog2 != spanLog2)
            {
                continue;
            }

            if (e.Stage != stage)
            {
                continue;
            }

            if (e.DomainId != domainId)
            {
                continue;
            }

            if (!e.Global && e.AddressSpaceId != addressSpaceId)
            {
                continue;
            }

            if (!EntryRules.SpanContains(e.InputAddress, e.SizeLog2, address))
            {
                continue;
            }

            if (!found)
            {
                best = e;
                found = true;
            }
            else if (e.SizeLog2 < best.SizeLog2)
            {
                best = e;
            }
            else if (e.SizeLog2 == best.SizeLog2 && !e.Global && best.Global)
            {
                best = e;
            }
        }

        if (!found)
        {
            return false;
        }

        ulong output = table ? best.OutputAddress : best.OutputAddress + (address - best.InputAddress);
        translation = new Translation(output, best.InputAddress, best.Rights, best.SizeLog2, best.Global);
        return true;
    }

    /// <summary>Removes every IOTLB entry.</summary>
    public void ClearIotlb() => _iotlb.Clear();

    /// <summary>Every IOTLB entry, in <see cref="EntryOrder"/>.</summary>
    public TranslationEntry[] IotlbSnapshot()
    {
        TranslationEntry[] copy = [.. _iotlb];
        Array.Sort(copy, EntryOrder.Compare);
        return copy;
    }

    // ---- Device TLB -----------------------------------------------------------------------------------

    /// <summary>Caches a device-TLB entry: Rejected if malformed, Replaced if its identity exists, else Inserted.</summary>
    public FillResult FillDeviceTlb(in DeviceTlbEntry entry)
    {
        if (!EntryRules.IsValid(entry))
        {
            return FillResult.Rejected;
        }

        DeviceTlbEntry stored = EntryRules.Normalize(entry);
        for (int i = 0; i < _deviceTlb.Count; i++)
        {
            if (EntryRules.SameIdentity(_deviceTlb[i], stored))
            {
                _deviceTlb[i] = stored;
                return FillResult.Replaced;
            }
        }

        _deviceTlb.Add(stored);
        return FillResult.Inserted;
    }

    /// <summary>The device's translation of <paramref name="address"/> for <paramref name="pasid"/>: smallest span first,
    /// at equal span the non-global entry before the global one.</summary>
    public bool TryLookupDeviceTlb(uint sourceId, uint pasid, ulong address, out Translation translation)
    {
        translation = default;
        if (!EntryRules.IsValidAddressSpace(pasid))
        {
            return false;
        }

        bool found = false;
        DeviceTlbEntry best = default;
        foreach (DeviceTlbEntry e in _deviceTlb)
        {
            if (e.SourceId != sourceId)
            {
                continue;
            }

            if (!e.Global && e.Pasid != pasid)
            {
                continue;
            }

            if (!EntryRules.SpanContains(e.InputAddress, e.SizeLog2, address))
            {
                continue;
            }

            if (!found)
            {
                best = e;
                found = true;
            }
            else if (e.SizeLog2 < best.SizeLog2)
            {
                best = e;
            }
            else if (e.SizeLog2 == best.SizeLog2 && !e.Global && best.Global)
            {
                best = e;
            }
        }

        if (!found)
        {
            return false;
        }

        translation = new Translation(best.OutputAddress + (address - best.InputAddress), best.InputAddress, best.Rights,
            best.SizeLog2, best.Global);
        return true;
    }

    /// <summary>Removes every device-TLB entry (the ordinal is not reset).</summary>
    public void ClearDeviceTlb() => _deviceTlb.Clear();

    /// <summary>Every device-TLB entry, in <see cref="EntryOrder"/>.</summary>
    public DeviceTlbEntry[] DeviceTlbSnapshot()
    {
        DeviceTlbEntry[] copy = [.. _deviceTlb];
        Array.Sort(copy, EntryOrder.Compare);
        return copy;
    }

    // ---- Configuration caches ------------------------------------------------------------------------

    /// <summary>Caches a configuration entry: Rejected if malformed, Replaced if (kind, source, address space) exists,
    /// else Inserted.</summary>
    public FillResult FillConfig(in ConfigEntry entry)
    {
        if (!EntryRules.IsValid(entry))
        {
            return FillResult.Rejected;
        }

        for (int i = 0; i < _config.Count; i++)
        {
            if (EntryRules.SameIdentity(_config[i], entry))
            {
                _config[i] = entry;
                return FillResult.Replaced;
            }
        }

        _config.Add(entry);
        return FillResult.Inserted;
    }

    /// <summary>The cached entry of (kind, source id, address space).</summary>
    public bool TryLookupConfig(ConfigKinds kind, uint sourceId, uint addressSpaceId, out ConfigEntry entry)
    {
        foreach (ConfigEntry e in _config)
        {
            if (e.Kind == kind && e.SourceId == sourceId && e.AddressSpaceId == addressSpaceId)
            {
                entry = e;
                return true;
            }
        }

        entry = default;
        return false;
    }

    /// <summary>Removes every configuration entry.</summary>
    public void ClearConfig() => _config.Clear();

    /// <summary>Every configuration entry, in <see cref="EntryOrder"/>.</summary>
    public ConfigEntry[] ConfigSnapshot()
    {
        ConfigEntry[] copy = [.. _config];
        Array.Sort(copy, EntryOrder.Compare);
        return copy;
    }

    // ---- Invalidation ---------------------------------------------------------------------------------

    /// <summary>Executes one descriptor by its documented rules.</summary>
    public InvalidationStatus Execute(in InvalidationDescriptor descriptor)
    {
        if (!DescriptorRules.IsValid(descriptor))
        {
            return InvalidationStatus.Invalid;
        }

        InvalidationDescriptor d = descriptor;
        switch (d.Scope)
        {
            case InvalidationScope.Iotlb:
                _iotlb.RemoveAll(e => DescriptorRules.MatchesIotlbTags(d, e));
                return InvalidationStatus.Ok;

            case InvalidationScope.IotlbRange:
                _iotlb.RemoveAll(e => DescriptorRules.MatchesIotlbRange(d, e));
                return InvalidationStatus.Ok;

            case InvalidationScope.DeviceTlb:
                ulong ordinal = _deviceTlbOrdinal;
                _deviceTlbOrdinal++;
                DeviceTlbFault fault = FaultPlan.DecideDeviceTlb(ordinal, d.SourceId);
                if (fault == DeviceTlbFault.Timeout)
                {
                    return InvalidationStatus.TimedOut;
                }

                _deviceTlb.RemoveAll(e => DescriptorRules.MatchesDeviceTlb(d, e));
                return fault == DeviceTlbFault.CompletionError ? InvalidationStatus.CompletionError : InvalidationStatus.Ok;

            case InvalidationScope.Config:
                _config.RemoveAll(e => DescriptorRules.MatchesConfig(d, e));
                return InvalidationStatus.Ok;

            default:
                throw new InvalidOperationException("unreachable: a valid descriptor has a known scope");
        }
    }

    /// <summary>Executes a batch one descriptor at a time, in order, writing each outcome.</summary>
    public BatchResult Execute(ReadOnlySpan<InvalidationDescriptor> batch, Span<InvalidationStatus> statuses)
    {
        if (statuses.Length < batch.Length)
        {
            throw new ArgumentException("The outcome span is shorter than the batch.", nameof(statuses));
        }

        int ok = 0;
        int timedOut = 0;
        int completionErrors = 0;
        int invalid = 0;
        int firstFailure = -1;
        for (int i = 0; i < batch.Length; i++)
        {
            InvalidationStatus status = Execute(batch[i]);
            statuses[i] = status;
            if (status == InvalidationStatus.Ok)
            {
                ok++;
                continue;
            }

            if (firstFailure < 0)
            {
                firstFailure = i;
            }

            if (status == InvalidationStatus.TimedOut)
            {
                timedOut++;
            }
            else if (status == InvalidationStatus.CompletionError)
            {
                completionErrors++;
            }
            else
            {
                invalid++;
            }
        }

        return new BatchResult(ok, timedOut, completionErrors, invalid, firstFailure);
    }
}
