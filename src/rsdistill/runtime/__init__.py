"""What every layer above runs on: precision and devices, torchrun, feature hooks, file
formats and run-directory names, optimisers, machine facts."""
