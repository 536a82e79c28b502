"""digitlab.evaluation"""
