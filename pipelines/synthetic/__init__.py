"""A synthetic county shaped like MIS exports, so that no real child's data is ever needed."""
