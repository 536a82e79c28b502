"""digitlab.inference"""
