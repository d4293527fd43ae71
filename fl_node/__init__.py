"""Data-owner nodes, the coordinator, aggregation and the engines (embedded, Flower)."""
