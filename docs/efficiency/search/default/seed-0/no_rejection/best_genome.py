# Best genome of the attnzero search in this directory (highest proxy accuracy on
# the Pareto front). Use as an mmengine _base_ or copy the two keys into a backbone
# dict; timm: timm.create_model(name, attn="attnzero", genome=GENOME).
GENOME = 'i3n401:focus3,focus3;normalize_ps,relu2;-;softsign;silu;normalize,normalize;relu,softmax;l2_norm:einsum1,first,einsum1,sum'
model = dict(backbone=dict(attn='attnzero', genome=GENOME))
