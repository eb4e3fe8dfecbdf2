"""Data contracts: identifier rules, versioned code sets, DfE reference lists, census calendar."""
