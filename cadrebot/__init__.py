"""cadrebot — 乡村振兴政策助手: cited policy answers and intake dialogs for rural Jiangxi."""

__version__ = "0.1.0"
