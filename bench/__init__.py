"""rackd benchmarks: each module measures one thing side by side with the tool operators use today."""
