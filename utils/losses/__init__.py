"""Training objectives, one module per method or family, each named after what it trains:

    supervised  cross-entropy (class weights, label smoothing)
    forecast    forecast MSE; PatchTST's masked-patch MSE
    ts2vec      hierarchical contrastive loss        timesurl   DualCon + time reconstruction
    simclr      NT-Xent                              moco       InfoNCE against a queue
    byol        normalised MSE                       simsiam    negative cosine, stop-gradient
    dino        self-distillation cross-entropy      instdisc   NCE against a memory bank
    hybrid      NT-Xent + SupCon + cross-entropy     cpc        InfoNCE over future steps
    tfc         time-frequency consistency           comet      patient/trial/sample/observation
    mae         masked-patch reconstruction          wav2vec2   masked-step contrast + diversity

A loss is built from conf/loss/<name>.yaml (``_target_: utils.losses.<module>.<Class>``) and
called as ``loss(outputs, batch)``, ``outputs`` being what its model's ``forward`` returns; it
gives a Tensor or ``{"loss": Tensor, <part>: Tensor, ...}`` (the parts are logged). Each
module also has the paper's formula as a function on plain tensors, so tests can check it
against a hand computation. State a loss depends on (MoCo's queue, DINO's centre, a memory
bank) lives in the model as buffers, so checkpoints hold it.
"""
