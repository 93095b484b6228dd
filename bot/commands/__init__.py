"""The command layer: what each task does, its flags, results and prompts, doctor, and the one error boundary."""
