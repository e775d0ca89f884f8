# Best genome of the attnzero search in this directory (highest proxy accuracy on
# the Pareto front). Use as an mmengine _base_ or copy the two keys into a backbone
# dict; timm: timm.create_model(name, attn="attnzero", genome=GENOME).
GENOME = 'i3n303:softsign,min_max_normalize;softmax;l2_norm;min_max_normalize_ps;revert,revert;softsign:product,product,product'
model = dict(backbone=dict(attn='attnzero', genome=GENOME))
