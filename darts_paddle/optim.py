"""The original's weight optimizer, shared by the search and the evaluation training."""

from .paddle_static import paddle


def weight_optimizer(scheduler, banks, cfg):
    """SGD with momentum (Nesterov's where cfg.nesterov) and L2 weight decay, gradients
    clipped to the global norm cfg.grad_clip first (clip_grad_norm_ then step()), not at
    all where it is 0.  `parameters=` is required: without it Paddle 3.3 fails in PIR mode
    creating the learning-rate variable."""
    return paddle.optimizer.Momentum(
        scheduler, momentum=cfg.momentum, parameters=banks, use_nesterov=cfg.nesterov,
        weight_decay=paddle.regularizer.L2Decay(cfg.weight_decay),
        grad_clip=paddle.nn.ClipGradByGlobalNorm(cfg.grad_clip) if cfg.grad_clip else None)
