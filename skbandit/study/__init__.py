"""The simulation study: policies played against simulated schools, summarised over seeds."""
