"""The training loop, losses, selection, and each training stage's work (finetune, teachers, references,
train)."""
