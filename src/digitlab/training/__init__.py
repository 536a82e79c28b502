"""digitlab.training"""
