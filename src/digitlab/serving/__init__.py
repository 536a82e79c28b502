"""digitlab.serving"""
