"""Writers for DfE extracts, EES open-data files and auditor reports."""
