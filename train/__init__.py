"""Training side: skeleton data, models, knowledge distillation, checkpoints."""
