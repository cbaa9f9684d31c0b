class ShopError(Exception):
    pass


class PaymentDeclined(ShopError):
    pass


class OutOfStock(ShopError):
    pass


class DatabaseError(ShopError):
    pass


class NotificationError(ShopError):
    pass


class ValidationError(ShopError):
    pass


class ServiceUnavailable(ShopError):
    pass
