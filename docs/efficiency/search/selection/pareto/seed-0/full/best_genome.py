# Best genome of the attnzero search in this directory (highest proxy accuracy on
# the Pareto front). Use as an mmengine _base_ or copy the two keys into a backbone
# dict; timm: timm.create_model(name, attn="attnzero", genome=GENOME).
GENOME = 'i3n305:relu2,relu2;elu;softmax;logsoftmax;relu;softplus:product,einsum1,einsum1'
model = dict(backbone=dict(attn='attnzero', genome=GENOME))
