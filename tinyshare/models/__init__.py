"""Weight-shared layers, the sharing structure, and the model zoo."""
