# ImageNet-1k: CSWin-S, the CSWin-T config with the 'small' arch.
_base_ = './cswin-t-attnzero_8xb128-300e_in1k.py'

model = dict(model_name='attnzero_cswin_small', drop_path_rate=0.4)
