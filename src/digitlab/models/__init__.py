"""digitlab.models"""
