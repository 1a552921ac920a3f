"""Learning-rate schedule: the official CycleGAN 'linear' policy."""
from torch.optim.lr_scheduler import LambdaLR


def linear_rule(n_epochs, n_epochs_decay, epoch_count=1):
    """Multiplier of the base lr for epoch index e (0-based, the number of scheduler steps taken):
    1 for the first `n_epochs` epochs, then decreasing linearly, exactly as the official
    `lambda_rule`: 1 - max(0, e + epoch_count - n_epochs) / (n_epochs_decay + 1).
    With epoch_count=1 the last epoch runs at lr / (n_epochs_decay + 1) and it reaches 0 one
    epoch after training ends."""
    def rule(epoch):
        return 1.0 - max(0, epoch + epoch_count - n_epochs) / float(n_epochs_decay + 1)
    return rule


def make_scheduler(optimizer, n_epochs, n_epochs_decay):
    return LambdaLR(optimizer, lr_lambda=linear_rule(n_epochs, n_epochs_decay))
